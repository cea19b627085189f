import json

import pytest
from test_runner import run

from harness.errors import DataError
from harness.results import read_jsonl
from models.replay import ReplayAdapter


def test_replay_of_an_oracle_run_reproduces_it(toy_root, tmp_path):
    oracle = run("oracle", "", ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "oracle")
    replay = tmp_path / "predictions.jsonl"
    with replay.open("w") as stream:
        for task in ("toy_questions", "toy_segmentation"):
            for row in read_jsonl(tmp_path / "oracle" / "samples" / f"{task}.jsonl"):
                prediction = row["prediction"]
                line = {"task": task, "sample_id": row["sample_id"], "text": prediction["text"]}
                line |= {"masks": prediction["masks"], "phrases": prediction["phrases"]}
                stream.write(json.dumps(line) + "\n")
    replayed = run("replay", f"predictions={replay}", ["toy_questions", "toy_segmentation"], toy_root, tmp_path / "r")
    for task in ("toy_questions", "toy_segmentation"):
        assert replayed["tasks"][task]["metrics"] == oracle["tasks"][task]["metrics"]
        original = [r["prediction"]["masks"] for r in read_jsonl(tmp_path / "oracle" / "samples" / f"{task}.jsonl")]
        again = [r["prediction"]["masks"] for r in read_jsonl(tmp_path / "r" / "samples" / f"{task}.jsonl")]
        assert original == again


def test_sample_missing_from_replay_fails_alone(toy_root, tmp_path):
    replay = tmp_path / "p.jsonl"
    replay.write_text(json.dumps({"task": "toy_questions", "sample_id": "s000", "text": "yes"}) + "\n")
    results = run("replay", f"predictions={replay}", ["toy_questions"], toy_root, tmp_path / "r")
    assert results["tasks"]["toy_questions"]["n_failed"] == 11
    assert results["tasks"]["toy_questions"]["failures"] == {"NotInReplay": 11}
    assert results["tasks"]["toy_questions"]["metrics"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ({"sample_id": "s0"}, "line 1: missing field 'task'"),
        ({"task": "t", "sample_id": "s0", "masks": [{"size": [1, 1]}]}, "line 1: field 'masks' must be a list of RLE"),
        ({"task": "t", "sample_id": "s0", "phrases": "a dog"}, "line 1: field 'phrases' must be a list of strings"),
    ],
)
def test_malformed_replay_lines_are_named(tmp_path, line, fragment):
    replay = tmp_path / "p.jsonl"
    replay.write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=fragment):
        ReplayAdapter(predictions=replay)


def test_duplicate_replay_lines_are_refused(tmp_path):
    replay = tmp_path / "p.jsonl"
    line = json.dumps({"task": "t", "sample_id": "s0", "text": "a"})
    replay.write_text(f"{line}\n{line}\n")
    with pytest.raises(DataError, match="line 2: t sample 's0' already appeared on line 1"):
        ReplayAdapter(predictions=replay)
