"""AttrEval question answering: accuracy, paired accuracy (LIRA's ``accuracy2``) and accuracy per attribute.

An answer is correct when ``answer.strip().lower() == annotation.strip().lower()`` (exact string equality:
no punctuation removal, "Red." is not "red"), as in LIRA's ``evaluate_vqa.py``.

``paired_accuracy`` is LIRA's ``accuracy2``: the questions are taken in consecutive pairs of the task's
sample order, (0, 1), (2, 3), ...; a pair scores 1 only if both answers are correct; the value is the
mean over pairs, and an odd last question is ignored. Pairs are formed from each record's position in
the task's full sample order (`AttrEvalQA.add` stamps it into the record), never from the order records
happen to arrive in. A pair with a failed member (a sample recorded as failed, excluded from every
aggregate) is incomplete and left out of ``paired_accuracy``, like the lone last question.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import SampleError
from harness.metrics.base import Metric, Record
from harness.stats import resample_sums
from harness.types import Prediction, Sample


def answers_match(answer: str, annotation: str) -> bool:
    """LIRA's exact match: equal after ``strip().lower()``."""
    return answer.strip().lower() == annotation.strip().lower()


class AttrEvalQA(Metric):
    """Accuracy, paired accuracy and per-attribute accuracy of AttrEval answers.

    ``Sample.target``: ``{"answer": str, "attribute": str}`` (the attribute type, e.g. ``"color"``);
    ``Prediction.text``: the model's answer, unprocessed.

    Reported values: ``accuracy``, ``paired_accuracy`` and ``accuracy_<attribute>`` for every attribute
    type present.

    Raises:
        SampleError (per sample): a non-string answer or annotation.
    """

    name = "attreval_qa"
    higher_is_better = {"accuracy": True, "paired_accuracy": True}
    definitions = {
        "accuracy": "share of answers equal to the annotation after strip().lower()",
        "paired_accuracy": "LIRA accuracy2: share of consecutive question pairs (0,1), (2,3), ... with both "
        "answers correct; an odd last question and pairs with a failed member are left out",
    }

    def __init__(self) -> None:
        super().__init__()

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        if not isinstance(prediction.text, str):
            raise SampleError(f"answer must be a string, got {type(prediction.text).__name__}")
        annotation = sample.target.get("answer")
        if not isinstance(annotation, str):
            raise SampleError(f"target 'answer' must be a string, got {type(annotation).__name__}")
        attribute = sample.target.get("attribute")
        return {
            "correct": int(answers_match(prediction.text, annotation)),
            "attribute": attribute if isinstance(attribute, str) else None,
        }

    def add(self, index: int, record: Record) -> None:
        """Store the record and stamp its position in the task's sample order into it (pairs need it).

        The stamp is written into ``record`` itself, so the samples log, which holds the same dict, keeps it.
        """
        record["index"] = index
        super().add(index, record)

    def sample_values(self, record: Record) -> dict[str, float]:
        return {"correct": float(record["correct"])}

    def _attributes(self, records: Sequence[Record]) -> list[str]:
        return sorted({r["attribute"] for r in records if r.get("attribute")})

    def _columns(self, records: Sequence[Record]) -> tuple[np.ndarray, list[str]]:
        """Per record: correct, pair value (pair correct if its pair is complete, else 0), pair complete,
        then (correct, present) for each attribute type."""
        positions = [int(r.get("index", i)) for i, r in enumerate(records)]
        correct = {p: r["correct"] for p, r in zip(positions, records, strict=True)}
        columns = []
        attributes = self._attributes(records)
        for position, record in zip(positions, records, strict=True):
            partner = position + 1 if position % 2 == 0 else position - 1
            complete = partner in correct
            pair_correct = complete and bool(record["correct"]) and bool(correct[partner])
            row = [record["correct"], pair_correct, complete]
            for attribute in attributes:
                present = record.get("attribute") == attribute
                row += [present and bool(record["correct"]), present]
            columns.append(row)
        return np.array(columns, dtype=float).reshape(len(records), 3 + 2 * len(attributes)), attributes

    @staticmethod
    def _values(sums: np.ndarray, count: int, attributes: list[str]) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = {
                "accuracy": sums[..., 0] / count,
                # every complete pair contributes both members: the ratio is the mean over pairs
                "paired_accuracy": np.where(sums[..., 2] > 0, sums[..., 1] / sums[..., 2], np.nan),
            }
            for i, attribute in enumerate(attributes):
                hits, present = sums[..., 3 + 2 * i], sums[..., 4 + 2 * i]
                values[f"accuracy_{attribute}"] = np.where(present > 0, hits / present, np.nan)
        return values

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return {"accuracy": float("nan"), "paired_accuracy": float("nan")}
        columns, attributes = self._columns(records)
        values = self._values(columns.sum(axis=0), len(records), attributes)
        for attribute in attributes:  # the attribute types are only known from the data
            self.higher_is_better = {**self.higher_is_better, f"accuracy_{attribute}": True}
            self.definitions = {
                **self.definitions,
                f"accuracy_{attribute}": f"accuracy on the questions about the attribute type {attribute!r}",
            }
        return {key: float(value) for key, value in values.items()}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        """Resamples questions; each drawn question carries its (fixed) pair's outcome for paired accuracy."""
        if not records:
            return {}
        columns, attributes = self._columns(records)
        return self._values(resample_sums(draws, columns), draws.shape[1], attributes)


__all__ = ["AttrEvalQA", "answers_match"]
