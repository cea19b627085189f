"""Acceptance: every task loads the mini benchmark through its real-format loader, the oracle scores
perfectly on every task, and a `make demo`-style run prints a results table for all tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.task import TASKS, TaskGroup

REPO = Path(__file__).resolve().parents[2]
ANNOTATIONS = REPO / "dataset_builders" / "mini" / "annotations"


def load(name: str) -> dict:
    return json.loads((ANNOTATIONS / f"{name}.json").read_text())


def expected_sample_counts() -> dict[str, int]:
    """Sample counts worked out from the committed annotations, independently of the loaders."""
    counts: dict[str, int] = {}
    for dataset, refs in load("refs").items():
        if dataset.startswith("_"):
            continue
        for ref in refs:
            name = f"{dataset}_{ref['split']}"
            counts[name] = counts.get(name, 0) + len(ref["sentences"])
    for split in ("val", "test"):
        counts[f"gcg_{split}"] = len(load("gcg")[split])
    per_setting = 2 * sum(len(image["present"]) for image in load("pope")["images"].values())
    for prefix in ("pope", "pope_aokvqa", "pope_gqa"):
        for setting in ("random", "popular", "adversarial"):
            counts[f"{prefix}_{setting}"] = per_setting
    counts["chair"] = len(load("images")["images"])
    counts["attreval_qa_lira"] = 2 * len(load("attreval")["pairs"])
    # AttrEval built from the RefCOCO val refs (tests/dataset_builders/test_attreval_builder.py works the
    # items out): every QA attribute type has a pair and relation exactly one (the bench behind the
    # motorcycle), so balancing keeps one pair per type; the colour expressions are one ("the yellow one",
    # the bottle), so the segmentation track keeps one colour, one position and one combined expression.
    counts["attreval_qa"] = 2 * 4
    counts["attreval_seg"] = 3
    return counts


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "run_eval.py", *arguments], cwd=REPO, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def oracle(mini_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    output = tmp_path_factory.mktemp("oracle")
    process = run_cli(
        "--model",
        "oracle",
        "--tasks",
        "all",
        "--data-root",
        str(mini_root),
        "--output-dir",
        str(output),
        "--no-progress",
        "--bootstrap-iters",
        "0",
    )
    assert process.returncode == 0, process.stderr
    return process, json.loads((output / "results.json").read_text())


def test_every_registered_task_runs_on_the_mini_benchmark(oracle):
    _, results = oracle
    registered = [  # the built-in manifest (other tests may register plugin tasks in this process)
        name
        for name in TASKS.names()
        if not isinstance(TASKS.get(name), TaskGroup) and TASKS.origin(name).startswith("tasks.")
    ]
    assert sorted(results["tasks"]) == sorted(registered)
    expected = expected_sample_counts()
    assert {name: task["n_samples"] for name, task in results["tasks"].items()} == expected
    assert all(task["n_failed"] == 0 for task in results["tasks"].values())
    assert sum(expected[name] for name in expected if name.startswith("ref")) >= 40


def test_the_oracle_scores_perfectly_on_every_task(oracle):
    _, results = oracle
    for name, task in results["tasks"].items():
        values = task["metrics"]
        family = task["config"]["family"]
        if family == "refcoco":
            # the reference formulas: cIoU = sum I / (sum U + 1e-10), gIoU = mean of I / (U + 1e-5)
            assert values.pop("cIoU") == pytest.approx(1.0, abs=1e-12)
            assert values.pop("gIoU") == pytest.approx(1.0, abs=1e-6)
            assert values == {"P@0.5": 1.0, "P@0.6": 1.0, "P@0.7": 1.0, "P@0.8": 1.0, "P@0.9": 1.0}
        elif family == "pope":
            perfect = {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "unparseable": 0.0}
            assert {key: values[key] for key in perfect} == perfect, name
            assert values["yes_ratio"] == 0.5  # balanced questions, every answer right
        elif family == "chair":
            assert (values["CHAIR_s"], values["CHAIR_i"], values["recall"]) == (0.0, 0.0, 1.0)
        elif family == "attreval" and task["config"]["kind"] == "vqa":
            assert values["accuracy"] == 1.0 and values["paired_accuracy"] == 1.0
            assert all(values[key] == 1.0 for key in values if key.startswith("accuracy_")), name
        elif family == "attreval":
            assert all(values[key] == pytest.approx(1.0, abs=1e-6) for key in values), name
            assert {"cIoU_color", "cIoU_position", "cIoU_combined"} <= set(values)
        elif family == "gcg":
            assert values["AP50"] == pytest.approx(1.0) and values["mIoU"] == 1.0
            # identical captions: CIDEr-D is 10 (cosine 1, no length penalty); METEOR loses only its
            # fragmentation penalty 0.5 * (1 chunk / m matches)^3, so it stays within 0.01 of 1
            assert values["CIDEr"] == pytest.approx(10.0) and values["METEOR"] > 0.99
        else:
            pytest.fail(f"unexpected family {family}")


def test_the_run_prints_a_results_table_for_all_tasks(oracle):
    process, results = oracle
    table = process.stdout
    for name in results["tasks"]:
        assert any(line.startswith(name + " ") for line in table.splitlines()), name
    assert "values are percentages" in table and "results: " in table


def test_pope_records_the_data_version_found(oracle):
    _, results = oracle
    version = results["tasks"]["pope_random"]["config"]["data_version"]
    assert version == {"version": "nonstandard", "questions": 60, "yes": 30, "no": 30, "imange_typos": 0}


def test_a_baseline_run_on_all_tasks(mini_root, tmp_path):
    process = run_cli(
        "--model",
        "constant",
        "--model-args",
        "answer=yes,mask=center",
        "--tasks",
        "all",
        "--task-args",
        "gcg.caption_scorers=CIDEr",
        "--data-root",
        str(mini_root),
        "--output-dir",
        str(tmp_path),
        "--no-progress",
        "--bootstrap-iters",
        "0",
    )
    assert process.returncode == 0, process.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    pope = results["tasks"]["pope_popular"]["metrics"]
    # always "yes" on balanced questions: TP = N/2, FP = N/2, FN = 0
    assert (pope["accuracy"], pope["precision"], pope["recall"], pope["yes_ratio"]) == (0.5, 0.5, 1.0, 1.0)
    assert pope["f1"] == pytest.approx(2 / 3)
    answers = [answer for pair in load("attreval")["pairs"] for _, answer in pair["questions"]]
    attreval = results["tasks"]["attreval_qa_lira"]["metrics"]
    assert attreval["accuracy"] == pytest.approx(answers.count("yes") / len(answers))
    assert attreval["paired_accuracy"] == 0.0  # the first question of every pair is open
    built = results["tasks"]["attreval_qa"]["metrics"]  # one yes and one no per pair: "yes" gets half, no pair
    assert (built["accuracy"], built["paired_accuracy"]) == (0.5, 0.0)
    chair = results["tasks"]["chair"]["metrics"]
    assert chair["CHAIR_s"] == 0.0 and chair["recall"] == 0.0  # "a photo" names no COCO object
    for name, task in results["tasks"].items():
        assert task["n_failed"] == 0, name
        assert any(line.startswith(name + " ") for line in process.stdout.splitlines()), name
