"""Leaderboard files: CSV column schema, Markdown, LaTeX text structure, HTML table, and the CLI."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from report_html import parse
from report_synthetic import task_result, write_run
from report_toy import (
    run_cli,
    toy_runs_fixture,  # noqa: F401  (the toy_runs fixture)
)

from reports import write_leaderboard


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    """Three models on two tasks; CHAIR_i is lower-is-better; model_c lacks task_b."""

    def tasks(accuracy: float, f1: float | None, chair: float) -> dict:
        return {
            "task_a": task_result({"accuracy": accuracy, "f1": f1}),
            "task_b": task_result({"CHAIR_i": chair}, higher={"CHAIR_i": False}),
        }

    a = write_run(tmp_path / "a", tasks(0.5, 0.25, 0.125), model="model_a", fingerprint="1" * 64)
    b = write_run(tmp_path / "b", tasks(0.75, None, 0.0625), model="model_b", fingerprint="2" * 64)
    c_tasks = {"task_a": task_result({"accuracy": 0.75, "f1": 0.5})}
    c = write_run(tmp_path / "c", c_tasks, model="model_c&co", fingerprint="3" * 64, groups={"both": {"accuracy": 0.6}})
    return [a, b, c]


def test_csv_column_schema(three_runs: list[Path], tmp_path: Path) -> None:
    written = write_leaderboard(three_runs, tmp_path / "out")
    rows = list(csv.reader(io.StringIO(written["csv"].read_text())))
    assert rows[0] == [
        "model",
        "model_args",
        "fingerprint",
        "run",
        "task_a/accuracy",
        "task_a/f1",
        "task_b/CHAIR_i",
        "both (mean)/accuracy",
    ]
    assert [row[0] for row in rows[1:]] == ["model_a", "model_b", "model_c&co"]
    assert rows[1][4:] == ["50.0000", "25.0000", "12.5000", ""]
    assert rows[2][4:] == ["75.0000", "", "6.2500", ""]
    assert rows[3][4:] == ["75.0000", "50.0000", "", "60.0000"]
    assert rows[3][2] == "3" * 64


def test_latex_structure(three_runs: list[Path], tmp_path: Path) -> None:
    tex = write_leaderboard(three_runs, tmp_path / "out")["tex"].read_text()
    lines = [line for line in tex.splitlines() if not line.startswith("%")]
    assert lines[0] == "\\begin{tabular}{lrrrr}"
    assert lines[-1] == "\\end{tabular}"
    rules = [line for line in lines if line in ("\\toprule", "\\midrule", "\\bottomrule")]
    assert rules == ["\\toprule", "\\midrule", "\\bottomrule"]
    body = lines[lines.index("\\toprule") + 1 : lines.index("\\bottomrule")]
    rows = [line for line in body if line.endswith("\\\\")]
    # every row has 1 + 4 cells; the task header spans add up to the 4 metric columns
    spans = [int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", rows[0])]
    assert spans == [2, 1, 1]
    assert re.findall(r"\\cmidrule\(lr\)\{(\d+)-(\d+)\}", body[1]) == [("2", "3"), ("4", "4"), ("5", "5")]
    assert "task\\_a" in rows[0] and "both (mean)" in rows[0]
    up, down = "$\\uparrow$", "$\\downarrow$"
    assert rows[1] == f"Model & accuracy {up} & f1 {up} & CHAIR\\_i {down} & accuracy {up} \\\\"
    models = rows[2:]
    assert all(len(row[: -len("\\\\")].split(" & ")) == 5 for row in models)
    # best per column in bold: accuracy 75.00 twice (tie), f1 50.00, CHAIR_i lowest 6.25; one value alone: plain
    assert models[0] == "model\\_a & 50.00 & 25.00 & 12.50 & -- \\\\"
    assert models[1] == "model\\_b & \\textbf{75.00} & -- & \\textbf{6.25} & -- \\\\"
    assert models[2] == "model\\_c\\&co & \\textbf{75.00} & \\textbf{50.00} & -- & 60.00 \\\\"


def test_markdown_marks_the_best_values(three_runs: list[Path], tmp_path: Path) -> None:
    lines = write_leaderboard(three_runs, tmp_path / "out")["md"].read_text().splitlines()
    assert lines[0] == "| model | task_a/accuracy ↑ | task_a/f1 ↑ | task_b/CHAIR_i ↓ | both (mean)/accuracy ↑ |"
    assert lines[1] == "|---|---:|---:|---:|---:|"
    assert lines[3] == "| model_b | **75.00** | – | **6.25** | – |"


def test_html_leaderboard_rows_and_best_cells(three_runs: list[Path], tmp_path: Path) -> None:
    page = parse(write_leaderboard(three_runs, tmp_path / "out")["html"].read_text())
    table = page.find("table", id="leaderboard")
    body = table.find("tbody")
    assert [row[0] for row in body.rows()] == ["model_a", "model_b", "model_c&co"]
    best = [cell.text() for cell in body.iter() if cell.tag == "td" and "best" in (cell.attrs.get("class") or "")]
    assert best == ["75.00", "6.25", "75.00", "50.00"]
    headers = [node.attrs["data-key"] for node in table.find_all("th") if "data-key" in node.attrs]
    assert headers == ["task_a/accuracy", "task_a/f1", "task_b/CHAIR_i", "both (mean)/accuracy"]


def test_duplicate_model_names_are_told_apart(tmp_path: Path) -> None:
    tasks = {"t": task_result({"accuracy": 0.5})}
    runs = [
        write_run(tmp_path / "x", tasks, model="lira", args="tiles=4"),
        write_run(tmp_path / "y", tasks, model="lira", args="tiles=12"),
        write_run(tmp_path / "z", tasks, model="other"),
    ]
    rows = list(csv.reader(io.StringIO(write_leaderboard(runs, tmp_path / "out")["csv"].read_text())))
    assert [row[0] for row in rows[1:]] == ["lira (tiles=4)", "lira (tiles=12)", "other"]


def test_report_command(toy_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "board"
    assert run_cli("report", str(toy_runs["oracle"]), str(toy_runs["replay"]), "--out", str(out)) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "leaderboard.csv",
        "leaderboard.html",
        "leaderboard.md",
        "leaderboard.tex",
    ]
    links = [node.attrs["href"] for node in parse((out / "leaderboard.html").read_text()).find_all("a")]
    assert len(links) == 2
    for link, run in zip(links, toy_runs.values(), strict=True):
        assert (out / link).resolve() == (run / "report.html").resolve()
    capsys.readouterr()
    assert run_cli("report", str(tmp_path / "nowhere"), "--out", str(out)) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
