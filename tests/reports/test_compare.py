"""``run_eval.py compare``: exit codes 0 / 1 / 2, tolerances, directions and paired bootstrap intervals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_synthetic import task_result, write_run
from report_toy import (
    run_cli,
    toy_runs_fixture,  # noqa: F401  (the toy_runs fixture)
)

from reports.compare import classify, compare_runs, parse_tolerances


def _compare(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_cli("compare", *arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _pair(tmp_path: Path, before: dict, after: dict, higher: dict | None = None) -> tuple[str, str]:
    baseline = write_run(tmp_path / "baseline", {"task": task_result(before, higher=higher)})
    current = write_run(tmp_path / "current", {"task": task_result(after, higher=higher)})
    return str(baseline), str(current)


def test_identical_runs_exit_0(toy_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(capsys, str(toy_runs["replay"]), str(toy_runs["replay"]))
    assert code == 0
    assert out.strip().endswith("identical metrics")


def test_a_drop_exits_1_with_a_paired_interval(toy_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(capsys, str(toy_runs["oracle"]), str(toy_runs["replay"]))
    assert code == 1
    assert "REGRESSION" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("toy_")}
    assert "-18.18" in rows["toy_questions"] and rows["toy_questions"].rstrip().endswith("WORSE")

    comparison = compare_runs(toy_runs["oracle"], toy_runs["replay"], bootstrap_iters=1000)
    accuracy = next(change for change in comparison.changes if change.metric == "accuracy")
    # paired on the 11 samples scored in both runs: all right before, 2 wrong now -> -2/11 exactly;
    # no resample can improve, so the interval ends at or below 0
    assert accuracy.paired_samples == 11
    assert accuracy.paired.difference == pytest.approx(-2 / 11)
    assert -1 <= accuracy.paired.low <= -2 / 11 <= accuracy.paired.high <= 0
    # a resample shows no drop only when it misses both wrong samples: (9/11)^11 = 0.110, two-sided p ~ 0.22
    assert 0.15 < accuracy.paired.p_value < 0.30
    miou = next(change for change in comparison.changes if change.metric == "mIoU")
    # shared samples: s000 (1 -> 1), s001 (1 -> 0), nine with 1 -> 9/11: mean difference -(1 + 9 x 2/11) / 11
    assert miou.paired.difference == pytest.approx(-(1 + 18 / 11) / 11)


def test_an_improvement_exits_0(toy_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(capsys, str(toy_runs["replay"]), str(toy_runs["oracle"]))
    assert code == 0
    assert "better" in out and "WORSE" not in out


def test_tolerances(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline, current = _pair(tmp_path, {"accuracy": 0.80}, {"accuracy": 0.79})
    assert _compare(capsys, baseline, current)[0] == 1
    assert _compare(capsys, baseline, current, "--tolerance", "accuracy=0.02")[0] == 0
    assert _compare(capsys, baseline, current, "--tolerance", "*=0.02")[0] == 0
    assert _compare(capsys, baseline, current, "--tolerance", "*=0.02", "task/accuracy=0.005")[0] == 1
    out = _compare(capsys, baseline, current, "--tolerance", "accuracy=0.02")[1]
    assert "worse" in out and "2.00" in out


def test_direction_comes_from_higher_is_better(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    higher = {"CHAIR_i": False}
    assert _compare(capsys, *_pair(tmp_path / "up", {"CHAIR_i": 0.10}, {"CHAIR_i": 0.12}, higher))[0] == 1
    assert _compare(capsys, *_pair(tmp_path / "down", {"CHAIR_i": 0.10}, {"CHAIR_i": 0.08}, higher))[0] == 0


def test_missing_and_undefined_metrics_regress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(capsys, *_pair(tmp_path / "gone", {"a": 0.5, "b": 0.5}, {"a": 0.5}))
    assert code == 1 and "MISSING" in out
    assert _compare(capsys, *_pair(tmp_path / "none", {"a": 0.5}, {"a": None}))[0] == 1
    code, out, _ = _compare(capsys, *_pair(tmp_path / "new", {"a": 0.5}, {"a": 0.5, "b": 0.1}))
    assert code == 0 and "new" in out


def test_classify() -> None:
    assert classify(0.5, 0.5, True, 0.0) == "same"
    assert classify(0.5, 0.4, True, 0.0) == "WORSE"
    assert classify(0.5, 0.45, True, 0.1) == "worse"
    assert classify(0.5, 0.6, False, 0.0) == "WORSE"
    assert classify(0.5, 0.6, None, 0.2) == "changed"
    assert classify(0.5, 0.6, None, 0.0) == "WORSE"


def test_unreadable_input_exits_2(
    toy_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = str(toy_runs["oracle"])
    code, _, err = _compare(capsys, str(tmp_path / "absent"), good)
    assert code == 2 and "absent does not exist" in err

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"schema_version": 1,\n "tasks": [}')
    code, _, err = _compare(capsys, good, str(broken))
    assert code == 2 and "not valid JSON (line 2" in err

    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps({"schema_version": 0}))
    code, _, err = _compare(capsys, good, str(old))
    assert code == 2 and "schema version 1" in err

    wrong = tmp_path / "wrong"
    shutil.copytree(toy_runs["oracle"], wrong)
    results = json.loads((wrong / "results.json").read_text())
    results["tasks"]["toy_questions"]["metrics"] = ["accuracy"]
    (wrong / "results.json").write_text(json.dumps(results))
    code, _, err = _compare(capsys, good, str(wrong))
    assert code == 2 and "tasks.toy_questions.metrics" in err

    log = tmp_path / "log"
    shutil.copytree(toy_runs["oracle"], log)
    (log / "samples" / "toy_segmentation.jsonl").write_text("[1, 2]\n")
    code, _, err = _compare(capsys, good, str(log))
    assert code == 2 and "toy_segmentation.jsonl line 1" in err
    assert "Traceback" not in err

    code, _, err = _compare(capsys, good, good, "--tolerance", "accuracy=lots")
    assert code == 2 and "'lots' is not a number" in err


def test_parse_tolerances() -> None:
    assert parse_tolerances(["cIoU=0.005", "pope_random/f1=0.01,*=0"]) == {
        "cIoU": 0.005,
        "pope_random/f1": 0.01,
        "*": 0.0,
    }
    for bad in (["cIoU"], ["=1"], ["a=-1"], ["a=1", "a=2"], ["a=nan"]):
        with pytest.raises(Exception, match="tolerance"):
            parse_tolerances(bad)
