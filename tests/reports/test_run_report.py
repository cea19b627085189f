"""The per-run report: structure, numbers, failures, escaping, drill-down data and the CLI hook."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from report_html import parse, read_script_call
from report_toy import (
    COUNT,
    XSS,
    box_rle,
    run_cli,
    toy_box,
    toy_runs_fixture,  # noqa: F401  (the toy_runs fixture)
)

from harness.results import load_results
from reports import write_run_report


def _page(run: Path):
    return parse((run / "report.html").read_text(encoding="utf-8"))


def _index(run: Path, slug: str) -> dict:
    return read_script_call(run / "report_files" / "data" / slug / "index.js", "attrevalIndex")[0]


def _details(run: Path, slug: str) -> list[dict]:
    rows = []
    for path in sorted((run / "report_files" / "data" / slug).glob("chunk-*.js")):
        rows += read_script_call(path, "attrevalChunk")[2]
    return rows


def test_the_report_parses_and_holds_every_task_and_metric(toy_runs: dict[str, Path]) -> None:
    # accuracy 9/11 = 81.82 %, mIoU 92/121 = 76.03 % (see report_toy.py); the oracle scores 100 on both
    expected = {
        "oracle": {"toy_questions": {"accuracy": "100.00"}, "toy_segmentation": {"mIoU": "100.00"}},
        "replay": {"toy_questions": {"accuracy": "81.82"}, "toy_segmentation": {"mIoU": "76.03"}},
    }
    for name, run in toy_runs.items():
        page = _page(run)
        for task, metrics in expected[name].items():
            section = page.find("section", id=f"task-{task}")
            table = section.find("table", class_="metrics")
            rows = {row[0]: row[1] for row in table.rows()[1:]}
            assert rows == metrics
        overview = {row[0]: row for row in page.find("table", id="overview").rows()[1:]}
        assert set(overview) == set(expected[name])
    replay = {row[0]: row for row in _page(toy_runs["replay"]).find("table", id="overview").rows()[1:]}
    assert replay["toy_questions"][3:5] == ["12", "1"]
    assert replay["toy_segmentation"][3:5] == ["12", "1"]


def test_intervals_are_shown_as_percentages(toy_runs: dict[str, Path]) -> None:
    results = load_results(toy_runs["replay"])
    low, high = results["tasks"]["toy_questions"]["intervals"]["accuracy"]
    row = _page(toy_runs["replay"]).find("tr", data_metric="accuracy")
    assert row.rows()[0][2] == f"{100 * low:.2f} – {100 * high:.2f}"


def test_summary_names_model_fingerprint_command_data_hashes_and_protocols(toy_runs: dict[str, Path]) -> None:
    run = toy_runs["replay"]
    results = load_results(run)
    summary = {row[0]: row[1] for row in _page(run).find("section", id="summary").find("table").rows()}
    assert summary["model"] == "replay"
    assert summary["model fingerprint"] == results["model"]["fingerprint"]
    assert summary["command"].startswith("run_eval.py run --model replay")
    toy_json = Path(run.parent / "data" / "toy" / "toy.json").read_bytes()
    digest = hashlib.sha256(toy_json).hexdigest()
    assert f"annotations {digest}" in summary["toy_questions"]
    assert "protocols: toy_accuracy" in summary["toy_questions"]
    assert "protocols: toy_iou" in summary["toy_segmentation"]


def test_failures_are_counted_with_their_reasons(toy_runs: dict[str, Path]) -> None:
    page = _page(toy_runs["replay"])
    questions = page.find("section", id="task-toy_questions")
    assert questions.find("table", class_="failures").rows()[1:] == [["NotInReplay", "1"]]
    assert questions.find("table", class_="failed-samples").rows()[1][0] == "s003"
    segmentation = page.find("section", id="task-toy_segmentation")
    assert segmentation.find("table", class_="failures").rows()[1:] == [["ScoringError", "1"]]
    failed = segmentation.find("table", class_="failed-samples").rows()[1]
    assert failed[0] == "s002" and "size" in failed[1]
    assert not _page(toy_runs["oracle"]).find_all("table", class_="failures")


def test_model_text_is_escaped_everywhere(toy_runs: dict[str, Path]) -> None:
    run = toy_runs["replay"]
    files = [run / "report.html", *(run / "report_files" / "data").rglob("*.js")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "<script>window" not in text and "<img src=x" not in text, path
    page = _page(run)
    assert all("onerror" not in node.attrs for node in page.iter())
    assert all(node.attrs.get("src", "").startswith("report_files/plots/") for node in page.find_all("img"))
    # the data files carry the text intact, as a JSON string, for the page to insert as text
    positions = {sample_id: n for n, sample_id in enumerate(_index(run, "toy_questions")["id"])}
    assert _details(run, "toy_questions")[positions["s002"]]["text"] == XSS
    assert _index(run, "toy_questions")["text"][positions["s002"]] == XSS


def test_drill_down_lists_every_sample_worst_first(toy_runs: dict[str, Path]) -> None:
    index = _index(toy_runs["replay"], "toy_segmentation")
    assert index["id"] == [f"s{i:03d}" for i in range(COUNT)]
    worst = [index["id"][position] for position in index["worst"]]
    # failed first, then IoU 0, then the nine shifted boxes (IoU 9/11) by index, then the exact box
    assert worst == ["s002", "s001", *(f"s{i:03d}" for i in range(3, COUNT)), "s000"]
    assert index["values"]["iou"][3] == pytest.approx(9 / 11)
    assert index["error"][2].startswith("ScoringError")
    questions = _index(toy_runs["replay"], "toy_questions")
    order = [questions["id"][position] for position in questions["worst"]]
    assert order[:3] == ["s003", "s001", "s002"]


def test_drill_down_details_carry_the_masks_to_overlay(toy_runs: dict[str, Path]) -> None:
    run = toy_runs["replay"]
    details = _details(run, "toy_segmentation")
    assert details[0]["gt"] == [box_rle(toy_box(0))] and details[0]["pred"] == [box_rle(toy_box(0))]
    x0, y0, x1, y1 = toy_box(5)
    assert details[5]["gt"] == [box_rle(toy_box(5))] and details[5]["pred"] == [box_rle([x0 + 1, y0, x1 + 1, y1])]
    assert details[1]["pred"] == []
    assert json.loads(details[0]["scores"]) == {"toy_iou": {"iou": 1.0}}
    index = _index(run, "toy_segmentation")
    assert index["has_masks"] and index["has_images"]
    thumbs = {name for name in index["thumb"] if name}
    assert len(thumbs) == 3  # three distinct images
    for name in thumbs:
        assert (run / "report_files" / "images" / name).read_bytes()[:2] == b"\xff\xd8"  # JPEG


def test_segmentation_plots_are_chosen_by_metric_names(toy_runs: dict[str, Path]) -> None:
    page = _page(toy_runs["replay"])
    images = [node.attrs["src"] for node in page.find("section", id="task-toy_segmentation").find_all("img")]
    assert images == [
        "report_files/plots/toy_segmentation-iou-histogram.png",
        "report_files/plots/toy_segmentation-precision-at-threshold.png",
    ]
    for src in images:
        assert (toy_runs["replay"] / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not page.find("section", id="task-toy_questions").find_all("img")


def test_score_rewrites_the_report(toy_runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(toy_runs["replay"], run)
    (run / "report.html").unlink()
    assert run_cli("score", str(run), "--bootstrap-iters", "50") == 0
    assert _page(run).find("section", id="task-toy_questions")


def test_report_without_samples_log(toy_runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(toy_runs["oracle"], run, ignore=shutil.ignore_patterns("samples", "report*"))
    write_run_report(run)
    section = _page(run).find("section", id="task-toy_questions")
    assert "No per-sample log" in section.text()
    assert not (run / "report_files" / "data").exists()


def test_bad_samples_log_is_named(toy_runs: dict[str, Path], tmp_path: Path) -> None:
    from harness.errors import DataError

    run = tmp_path / "run"
    shutil.copytree(toy_runs["oracle"], run)
    log = run / "samples" / "toy_questions.jsonl"
    log.write_text(log.read_text().replace("\n", "\n{broken\n", 1))
    with pytest.raises(DataError, match=r"toy_questions.jsonl line 2"):
        write_run_report(run)


def test_metrics_that_cannot_be_rebuilt_fall_back_to_record_numbers(tmp_path: Path) -> None:
    from report_synthetic import sample_row, task_result, write_run

    from harness.metrics import METRICS
    from reports.compare import compare_runs

    if "unloadable_metric" not in METRICS:
        METRICS.register_lazy("unloadable_metric", "no_such_module_for_attreval_tests:Metric")
    rows = [sample_row(i, scores={"unloadable_metric": {"score": i / 4, "label": "x"}}) for i in range(4)]
    task = task_result({"score": 0.375}, n_samples=4, metric_configs=[{"name": "unloadable_metric"}])
    run = write_run(tmp_path / "run", {"t": task}, samples={"t": rows})
    write_run_report(run)
    assert _index(run, "t")["values"] == {"score": [0.0, 0.25, 0.5, 0.75]}
    comparison = compare_runs(run, run)
    assert comparison.identical and any("unloadable_metric" in note for note in comparison.notes)
