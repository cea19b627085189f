"""The evaluation loop in-process: perfect oracle, determinism, failures, cache reuse and invalidation."""

import json
from pathlib import Path

import pytest

from harness.errors import DataError, UserError
from harness.model import get_model
from harness.results import ModelInfo, comparable, load_results, read_jsonl
from harness.runner import RunSettings, RunStopped, evaluate
from harness.task import get_task


def run(adapter_name, args, task_names, root, out, **settings):
    adapter = get_model(adapter_name, args)
    tasks = [get_task(name) for name in task_names]
    info = ModelInfo(name=adapter_name, args=args, options={}, fingerprint=adapter.fingerprint())
    return evaluate(
        adapter, tasks, RunSettings(data_root=root, output_dir=out, progress=False, **settings), model_info=info
    )


def logged(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


def test_oracle_scores_perfectly_and_writes_the_run_folder(toy_root, tmp_path):
    results = run("oracle", "", ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "run", seed=5)
    assert results["tasks"]["toy_questions"]["metrics"] == {"accuracy": 1.0}
    assert results["tasks"]["toy_segmentation"]["metrics"] == {"mIoU": 1.0}
    assert results["tasks"]["toy_questions"]["n_samples"] == 12 and results["tasks"]["toy_questions"]["n_failed"] == 0
    assert load_results(tmp_path / "run") == json.loads((tmp_path / "run" / "results.json").read_text())
    rows = read_jsonl(tmp_path / "run" / "samples" / "toy_questions.jsonl")
    assert [row["sample_id"] for row in rows] == [f"s{i:03d}" for i in range(12)]
    assert rows[0]["prompt"] == "Is there a box number 0? Answer yes or no."
    assert rows[0]["scores"] == {"toy_accuracy": {"correct": 1}}
    assert results["seed"] == 5 and results["tasks"]["toy_questions"]["data_hashes"]["annotations"]


def test_constant_baseline_scores_the_hand_computed_value(toy_root, tmp_path):
    results = run("constant", "answer=yes", ["toy_questions"], toy_root, tmp_path / "run")
    assert results["tasks"]["toy_questions"]["metrics"]["accuracy"] == 0.5  # answers alternate yes/no


def test_two_runs_give_identical_results(toy_root, tmp_path):
    first = run("constant", "answer=no,mask=center", ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "a")
    second = run("constant", "answer=no,mask=center", ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "b")
    assert comparable(first) == comparable(second)
    assert "runtime" in first


def test_cached_samples_are_not_recomputed_and_a_prompt_change_invalidates_only_its_task(toy_root, tmp_path):
    log = tmp_path / "calls.log"
    args = f"log={log}"
    run("counting", args, ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "run")
    assert len(logged(log)) == 24
    run("counting", args, ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "run")
    assert len(logged(log)) == 24  # everything came from the cache
    adapter = get_model("counting", args)
    tasks = [get_task("toy_questions").with_prompt("{question}"), get_task("toy_segmentation")]
    info = ModelInfo(name="counting", args=args, options={}, fingerprint=adapter.fingerprint())
    evaluate(
        adapter, tasks, RunSettings(data_root=toy_root, output_dir=tmp_path / "run", progress=False), model_info=info
    )
    calls = logged(log)[24:]
    assert len(calls) == 12 and all(line.startswith("toy_questions ") for line in calls)


def test_limit_takes_the_first_samples(toy_root, tmp_path):
    results = run("oracle", "", ["toy_questions"], toy_root, tmp_path / "run", limit=5)
    assert results["tasks"]["toy_questions"]["n_samples"] == 5 and results["limit"] == 5


def test_a_failing_sample_is_recorded_and_the_run_completes(toy_root, tmp_path):
    log = tmp_path / "calls.log"
    results = run("counting", f"log={log},fail=s003", ["toy_questions"], toy_root, tmp_path / "run", batch_size=4)
    task = results["tasks"]["toy_questions"]
    assert task["n_failed"] == 1 and task["failures"] == {"RuntimeError": 1}
    assert task["metrics"]["accuracy"] == 1.0  # the 11 others, answered by the oracle logic
    assert sorted(logged(log)) == sorted(f"toy_questions s{i:03d}" for i in range(12) if i != 3)
    rows = read_jsonl(tmp_path / "run" / "samples" / "toy_questions.jsonl")
    assert rows[3]["error"] == "RuntimeError: cannot answer s003" and rows[3]["prediction"] is None


def test_fail_fast_stops_at_the_failing_sample(toy_root, tmp_path):
    with pytest.raises(RunStopped, match="s003"):
        run("counting", f"log={tmp_path / 'x'},fail=s003", ["toy_questions"], toy_root, tmp_path / "r", fail_fast=True)


def test_missing_image_fails_only_that_sample(toy_root, tmp_path):
    (toy_root / "toy" / "img1.png").unlink()  # used by samples 1, 4, 7, 10
    results = run("oracle", "", ["toy_questions"], toy_root, tmp_path / "run")
    task = results["tasks"]["toy_questions"]
    assert task["n_failed"] == 4 and task["failures"] == {"ImageNotFound": 4}
    assert task["metrics"]["accuracy"] == 1.0


def test_bad_prediction_is_a_scoring_failure_not_a_zero(toy_root, tmp_path):
    replay = tmp_path / "replay.jsonl"
    lines = [
        {"task": "toy_segmentation", "sample_id": f"s{i:03d}", "masks": [{"size": [2, 2], "counts": "04"}]}
        for i in range(12)
    ]
    replay.write_text("\n".join(json.dumps(line) for line in lines))
    results = run("replay", f"predictions={replay}", ["toy_segmentation"], toy_root, tmp_path / "run")
    task = results["tasks"]["toy_segmentation"]
    assert task["n_failed"] == 12 and task["failures"] == {"ScoringError": 12}
    assert task["metrics"]["mIoU"] is None  # no scored sample: undefined, not 0
    rows = read_jsonl(tmp_path / "run" / "samples" / "toy_segmentation.jsonl")
    assert "size [2, 2] but the image is [24, 32]" in rows[0]["error"]


def test_capabilities_are_checked_up_front(toy_root, tmp_path):
    from models.constant import ConstantAdapter

    class TextOnly(ConstantAdapter):
        capabilities = frozenset({"text"})

    adapter = TextOnly()
    info = ModelInfo(name="text-only", args="", options={}, fingerprint=adapter.fingerprint())
    settings = RunSettings(data_root=toy_root, output_dir=tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="toy_segmentation needs masks"):
        evaluate(adapter, [get_task("toy_segmentation")], settings, model_info=info)


def test_missing_data_names_the_expected_files(tmp_path):
    with pytest.raises(DataError, match=r"toy_questions needs .*toy/toy\.json"):
        run("oracle", "", ["toy_questions"], tmp_path, tmp_path / "run")
