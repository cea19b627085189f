"""A tiny task family and test adapters, installed as an entry-point plugin in the harness tests.

Data: ``DATA_ROOT/toy/toy.json``, a list of ``{"id", "image", "question", "answer", "box": [x0, y0, x1, y1],
"height", "width"}``. The image paths are relative to ``DATA_ROOT/toy``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness import masks
from harness.errors import DataError, SampleError
from harness.metrics.base import Metric, Record
from harness.model import ModelAdapter
from harness.task import Task, TaskGroup
from harness.types import REQUEST_KINDS, GenerationSettings, Prediction, Request, Sample


def _load(data_root: Path) -> list[dict]:
    path = data_root / "toy" / "toy.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON (line {error.lineno})") from None


def box_mask(box: Sequence[int], height: int, width: int) -> np.ndarray:
    pixels = np.zeros((height, width), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 1
    return pixels


class Accuracy(Metric):
    name = "toy_accuracy"
    higher_is_better = {"accuracy": True}
    definitions = {"accuracy": "share of answers equal to the ground truth after strip().lower()"}

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        if not isinstance(prediction.text, str):
            raise SampleError("answer is not a string")
        return {"correct": int(prediction.text.strip().lower() == sample.target["answer"])}

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        return {"accuracy": float(np.mean([r["correct"] for r in records])) if records else float("nan")}


class MeanIoU(Metric):
    name = "toy_iou"
    higher_is_better = {"mIoU": True}

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        truth = masks.decode(sample.target["mask"]).astype(bool)
        if not prediction.masks:
            return {"iou": 0.0}
        predicted = masks.decode(masks.validate(prediction.masks[0], truth.shape)).astype(bool)
        union = np.logical_or(truth, predicted).sum()
        return {"iou": 1.0 if union == 0 else float(np.logical_and(truth, predicted).sum() / union)}

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        return {"mIoU": float(np.mean([r["iou"] for r in records])) if records else float("nan")}


class ToyQuestions(Task):
    family = "toy"
    kind = "vqa"
    prompt_template = "{question} Answer yes or no."
    generation = GenerationSettings(max_new_tokens=5)

    def __init__(self, name: str, annotations: Path | None = None) -> None:
        super().__init__(name, **({} if annotations is None else {"annotations": annotations}))
        self.annotations = annotations

    def data_files(self, data_root: Path) -> dict[str, Path]:
        return {"annotations": self.annotations or data_root / "toy" / "toy.json"}

    def samples(self, data_root: Path) -> list[Sample]:
        return [
            Sample(
                sample_id=item["id"],
                image=str(data_root / "toy" / item["image"]),
                target={"answer": item["answer"]},
                inputs={"question": item["question"]},
                image_size=(item["height"], item["width"]),
            )
            for item in _load(data_root)
        ]

    def reference(self, sample: Sample) -> Prediction:
        return Prediction(text=sample.target["answer"])

    def metrics(self) -> list[Metric]:
        return [Accuracy()]


class ToySegmentation(Task):
    family = "toyseg"
    kind = "referring_segmentation"
    requires = frozenset({"masks"})
    prompt_template = "Please segment the {answer} box."

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def data_files(self, data_root: Path) -> dict[str, Path]:
        return {"annotations": data_root / "toy" / "toy.json"}

    def samples(self, data_root: Path) -> list[Sample]:
        return [
            Sample(
                sample_id=item["id"],
                image=str(data_root / "toy" / item["image"]),
                target={"mask": masks.encode(box_mask(item["box"], item["height"], item["width"]))},
                inputs={"answer": item["answer"]},
                image_size=(item["height"], item["width"]),
            )
            for item in _load(data_root)
        ]

    def reference(self, sample: Sample) -> Prediction:
        return Prediction(text="[SEG]", masks=(sample.target["mask"],))

    def metrics(self) -> list[Metric]:
        return [MeanIoU()]


TOY_GROUP = TaskGroup(("toy_questions", "toy_segmentation"))


class CountingAdapter(ModelAdapter):
    """Answers like the oracle, logs every predicted sample id to ``log`` and sleeps ``delay`` per request.

    Requests whose sample id is in ``fail`` (``;``-separated) raise, to exercise failure handling.
    """

    capabilities = frozenset({"text", "masks", "reference"})
    request_kinds = frozenset(REQUEST_KINDS)
    preferred_batch_size = 2

    def __init__(self, log: Path, delay: float = 0.0, fail: tuple[str, ...] = ()) -> None:
        super().__init__(log=log, delay=delay, fail=";".join(fail))
        self.log, self.delay, self.fail = Path(log), delay, set(fail)

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        broken = [r.sample_id for r in requests if r.sample_id in self.fail]
        if broken:
            raise RuntimeError(f"cannot answer {broken[0]}")
        time.sleep(self.delay * len(requests))
        with self.log.open("a") as stream:
            for request in requests:
                stream.write(f"{request.task} {request.sample_id}\n")
        return [request.reference for request in requests]  # type: ignore[misc]
