"""Metrics inside a run: bad predictions become per-sample errors in the samples log, protocol options are
recorded in results.json, intervals come from the vectorised resampling."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness import masks
from harness.metrics.attreval import AttrEvalQA
from harness.metrics.base import Metric
from harness.metrics.pope import Pope
from harness.metrics.refseg import ReferringSegmentation
from harness.model import ModelAdapter
from harness.results import ModelInfo, read_jsonl
from harness.runner import RunSettings, evaluate
from harness.task import Task
from harness.types import REQUEST_KINDS, Prediction, Request, Sample


class ListTask(Task):
    """Samples and metrics given in memory; the data file only exists to be hashed."""

    family = "listing"
    kind = "vqa"
    requires = frozenset({"text"})
    prompt_template = "Answer."

    def __init__(self, name: str, samples: list[Sample], metrics: list[Metric], data: Path) -> None:
        super().__init__(name)
        self._samples, self._metrics, self._data = samples, metrics, data

    def data_files(self, data_root: Path) -> dict[str, Path]:
        return {"samples": self._data}

    def samples(self, data_root: Path) -> list[Sample]:
        return self._samples

    def reference(self, sample: Sample) -> Prediction:
        return Prediction()

    def metrics(self) -> list[Metric]:
        return [type(m)(**m.options) for m in self._metrics]


class FixedAdapter(ModelAdapter):
    capabilities = frozenset({"text", "masks"})
    request_kinds = frozenset(REQUEST_KINDS)

    def __init__(self, answers: dict[str, Prediction]) -> None:
        super().__init__()
        self.answers = answers

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        return [self.answers[request.sample_id] for request in requests]


def run(tmp_path, task, answers):
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    adapter = FixedAdapter(answers)
    info = ModelInfo(name="fixed", args="", options={}, fingerprint="fixed")
    settings = RunSettings(
        data_root=tmp_path / "data", output_dir=tmp_path / "run", progress=False, bootstrap_iters=200
    )
    results = evaluate(adapter, [task], settings, model_info=info)
    return results["tasks"][task.name], read_jsonl(tmp_path / "run" / "samples" / f"{task.name}.jsonl")


def test_bad_masks_are_per_sample_errors(tmp_path):
    data = tmp_path / "refs.json"
    data.write_text("[]")
    target = masks.encode(np.eye(3, 4, dtype=np.uint8))
    samples = [Sample(sample_id=f"s{i}", image=str(data), target={"mask": target}, image_size=(3, 4)) for i in range(4)]
    answers = {
        "s0": Prediction(text="[SEG]", masks=(target,)),
        "s1": Prediction(text="[SEG]", masks=(masks.empty(3, 5),)),
        "s2": Prediction(text="[SEG]", masks=({"size": [3, 4], "counts": "zz"},)),
        "s3": Prediction(text="[SEG]", masks=({"size": [3, 4], "counts": "0:"},)),
    }
    task = ListTask("refs", samples, [ReferringSegmentation(protocol="lisa")], data)
    result, rows = run(tmp_path, task, answers)
    assert result["n_failed"] == 3 and result["failures"] == {"ScoringError": 3}
    assert rows[1]["error"] == "ScoringError: predicted mask has size [3, 5] but the image is [3, 4] (height, width)"
    assert rows[2]["error"].startswith("ScoringError: predicted mask RLE counts cover no valid run lengths")
    assert "cover a different number of pixels than the 12" in rows[3]["error"]
    assert result["metrics"]["cIoU"] == 3 / (3 + 1e-10)  # the one valid sample, exact
    assert result["config"]["metrics"] == [{"name": "refseg", "protocol": "lisa"}]
    assert result["intervals"]["gIoU"] == [result["metrics"]["gIoU"]] * 2


def test_non_string_answers_are_per_sample_errors_and_pairs_use_positions(tmp_path):
    data = tmp_path / "qa.json"
    data.write_text("[]")
    samples = [
        Sample(sample_id=f"q{i}", image=str(data), target={"answer": "red", "attribute": "color", "label": "yes"})
        for i in range(6)
    ]
    answers = {f"q{i}": Prediction(text="red") for i in range(6)}
    answers["q1"] = Prediction(text=3)  # type: ignore[arg-type]
    result, rows = run(tmp_path / "qa", ListTask("qa", samples, [AttrEvalQA()], data), answers)
    assert result["n_failed"] == 1 and rows[1]["error"] == "ScoringError: answer must be a string, got int"
    assert result["metrics"] == {"accuracy": 1.0, "paired_accuracy": 1.0, "accuracy_color": 1.0}  # (0, 1) left out
    assert result["higher_is_better"]["accuracy_color"] is True
    assert rows[4]["scores"]["attreval_qa"]["index"] == 4
    result, rows = run(tmp_path / "pope", ListTask("pope", samples, [Pope(parser="exact")], data), answers)
    assert rows[1]["error"] == "ScoringError: answer must be a string, got int"
    assert result["metrics"]["unparseable"] == 1.0  # "red" is no yes/no for the exact parser
    assert result["config"]["metrics"] == [{"name": "pope", "parser": "exact"}]
    assert json.loads(json.dumps(result))  # JSON-clean
