"""Golden results: the machinery on the toy tasks, and the committed mini-benchmark golden files."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from report_toy import REPO, write_toy_data

from reports.golden import (
    GOLDEN_DIR,
    GoldenCase,
    check,
    differences,
    golden_path,
    load_cases,
    main,
    make_replay,
    regenerate,
)

COMMITTED = REPO / GOLDEN_DIR


@pytest.fixture
def toy_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[GoldenCase]:
    """Golden cases on the toy tasks, which the case processes find as an entry-point plugin."""
    from harness_fixtures import TOY_ENTRY_POINTS

    info = tmp_path / "site" / "attreval_toy-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: attreval-toy\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(TOY_ENTRY_POINTS)
    paths = [str(REPO), str(REPO / "tests" / "harness"), str(info.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    root = write_toy_data(tmp_path / "data")
    common = ("--tasks", "toy", "--data-root", str(root), "--bootstrap-iters", "100")
    return [
        GoldenCase("oracle", ("--model", "oracle", *common)),
        GoldenCase("constant", ("--model", "constant", "--model-args", "answer=no,mask=center", *common)),
    ]


def test_regenerate_then_check_is_clean(toy_cases: list[GoldenCase], tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    paths = regenerate(toy_cases, golden)
    assert [path.name for path in paths] == ["oracle.json", "constant.json"]
    stored = json.loads(paths[1].read_text())
    assert stored["case"] == toy_cases[1].to_dict()
    assert "runtime" not in stored["results"] and "git_commit" not in stored["results"]
    # the constant "no" answer is right on the 6 odd samples of 12
    assert stored["results"]["tasks"]["toy_questions"]["metrics"]["accuracy"] == 0.5
    for case in toy_cases:
        assert check(case, golden) == []


def test_any_difference_is_reported(toy_cases: list[GoldenCase], tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    regenerate(toy_cases[:1], golden)
    path = golden_path(toy_cases[0], golden)
    data = json.loads(path.read_text())
    data["results"]["tasks"]["toy_questions"]["metrics"]["accuracy"] = 0.9999999999999999
    data["results"]["tasks"]["toy_segmentation"]["intervals"]["mIoU"][0] = 0.5
    path.write_text(json.dumps(data))
    found = check(toy_cases[0], golden)
    assert found == [
        "tasks.toy_questions.metrics.accuracy: 1.0, expected 0.9999999999999999",
        "tasks.toy_segmentation.intervals.mIoU[0]: 1.0, expected 0.5",
    ]
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps({"cases": [case.to_dict() for case in toy_cases[:1]]}))
    common = ["--cases", str(cases_file), "--golden-dir", str(golden)]
    assert main(["check", *common]) == 1
    assert main(["regenerate", *common]) == 0
    assert main(["check", *common]) == 0
    assert main(["check", *common, "--only", "nonexistent"]) == 2


def test_changed_case_arguments_ask_for_regeneration(toy_cases: list[GoldenCase], tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    regenerate(toy_cases[:1], golden)
    changed = GoldenCase("oracle", (*toy_cases[0].args, "--limit", "3"))
    assert "make golden" in check(changed, golden)[0]


def test_differences() -> None:
    expected = {"a": [1, 2.0, {"b": None}], "c": "x", "gone": 1}
    actual = {"a": [1, 2.5, {"b": 0}], "c": "x", "new": 2}
    assert differences(expected, actual) == [
        "a[1]: 2.5, expected 2.0",
        "a[2].b: 0, expected null",
        "gone: missing (expected 1)",
        "new: unexpected",
    ]
    assert differences({"n": 1}, {"n": 1.0}) == ["n: 1.0, expected 1"]
    assert differences([1, 2], [1]) == ["(top): 1 items, expected 2"]


def test_make_replay_degrades_predictions_deterministically(toy_cases: list[GoldenCase], tmp_path: Path) -> None:
    from report_toy import run_cli

    from harness.results import load_results

    oracle = tmp_path / "oracle"
    assert run_cli("run", *toy_cases[0].args, "--output-dir", str(oracle), "--no-progress") == 0
    first, second = tmp_path / "replay1.jsonl", tmp_path / "replay2.jsonl"
    assert make_replay(oracle, first) == 24
    make_replay(oracle, second)
    assert first.read_bytes() == second.read_bytes()
    common = [arg for arg in toy_cases[0].args if arg not in ("--model", "oracle")]
    run = tmp_path / "replay"
    replay = ["--model", "replay", "--model-args", f"predictions={first}"]
    assert run_cli("run", *replay, *common, "--output-dir", str(run), "--no-progress") == 0
    metrics = {task: result["metrics"] for task, result in load_results(run)["tasks"].items()}
    # answers flipped at positions 1, 4, 7, 10 -> 8 of 12 right
    assert metrics["toy_questions"]["accuracy"] == pytest.approx(8 / 12)
    # masks dropped at positions 2 and 7 (IoU 0); moved right by 64 // 20 = 3 px at 1, 4, 10: a 10x8 box
    # keeps 7x8 of 13x8 (IoU 7/13); the 7 others are exact: mIoU = (7 + 3 x 7/13) / 12
    assert metrics["toy_segmentation"]["mIoU"] == pytest.approx((7 + 3 * 7 / 13) / 12)


def test_case_list_is_checked(tmp_path: Path) -> None:
    from harness.errors import DataError

    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [{"name": "a b", "args": []}]}))
    with pytest.raises(DataError, match="case 0"):
        load_cases(path)
    path.write_text(json.dumps({"cases": [{"name": "a", "args": []}, {"name": "a", "args": []}]}))
    with pytest.raises(DataError, match="repeat"):
        load_cases(path)


def _mini_benchmark_available() -> bool:
    try:
        return importlib.util.find_spec("dataset_builders.mini") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("case", load_cases(COMMITTED / "cases.json"), ids=lambda case: case.name)
def test_committed_golden_results(case: GoldenCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerun each committed golden case on the mini benchmark; any difference fails (`make golden` rewrites)."""
    if not golden_path(case, COMMITTED).exists():
        if not _mini_benchmark_available():
            pytest.skip(
                "the mini benchmark (dataset_builders.mini) is not on this branch yet: golden files to generate"
            )
        pytest.fail(f"{golden_path(case, COMMITTED)} is missing: run `make golden` and commit the files")
    monkeypatch.chdir(REPO)
    assert check(case, COMMITTED, tmp_path) == []


def test_a_failing_case_says_why(tmp_path: Path) -> None:
    from reports.golden import GoldenError, run_case

    with pytest.raises(GoldenError, match=r"exited 2:\n.*no_such_model"):
        run_case(GoldenCase("broken", ("--model", "no_such_model", "--tasks", "toy")), tmp_path / "out")
