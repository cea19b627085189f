"""POPE (object-hallucination yes/no questions): accuracy, precision, recall, F1 and the predicted yes-ratio.

"yes" is the positive class. Answer parsers (option ``parser``):

* ``official`` (default; POPE ``evaluate.py`` = LLaVA ``eval_pope.py`` = LIRA): keep the text before the
  first ".", delete commas, split on single spaces; the answer is "no" when a word is exactly ``No``,
  ``no`` or ``not`` (case-sensitive), and "yes" otherwise, empty and garbage answers included.
* ``opera`` (OPERA ``pope_eval.py``): delete every "." and ",", split on spaces; "no" when a word is one
  of ``No``, ``not``, ``no``, ``NO`` or ends with ``n't``; "yes" otherwise.
* ``exact`` (lmms-eval): ``answer.lower().strip()`` must be exactly ``yes`` or ``no``; anything else is
  unparseable: wrong for accuracy, left out of precision and recall.

Metrics (no zero-division guards in the references; here an undefined precision, recall or F1 is 0.0,
as in lmms-eval and scikit-learn's default):

* accuracy = (TP + TN) / N; precision = TP / (TP + FP); recall = TP / (TP + FN);
  F1 = 2PR / (P + R); yes_ratio = predicted "yes" / N (lmms-eval reports the ground-truth ratio instead);
* unparseable = share of answers the parser could not read as an explicit yes or no: for ``exact``
  the answers that are neither; for ``official``/``opera`` the answers turned into "yes" only by default
  (no "no" word and no "yes" word in any capitalisation among the words the parser looks at).

Each POPE setting (random, popular, adversarial) is its own task; the runner's group means give the
average over settings (LLaVA's single POPE number is the mean F1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from harness.errors import SampleError
from harness.metrics.base import Metric, Record
from harness.stats import resample_sums
from harness.types import Prediction, Sample

Parser = Literal["official", "opera", "exact"]
UNPARSEABLE = -1


def parse_answer(text: str, parser: Parser = "official") -> tuple[int, bool]:
    """Read a yes/no answer: ``(1 for yes | 0 for no | -1 unparseable, whether it was explicit)``.

    ``explicit`` is False when the parser fell back to its default ("yes" for ``official``/``opera``).
    """
    if parser == "exact":
        word = text.lower().strip()
        verdict = 1 if word == "yes" else 0 if word == "no" else UNPARSEABLE
        return verdict, verdict != UNPARSEABLE
    if parser == "official":
        if text.find(".") != -1:
            text = text.split(".")[0]
        words = text.replace(",", "").split(" ")
        negative = "No" in words or "not" in words or "no" in words
    elif parser == "opera":
        words = text.replace(".", "").replace(",", "").split(" ")
        negative = any(word in ("No", "not", "no", "NO") for word in words) or any(
            word.endswith("n't") for word in words
        )
    else:
        raise ValueError(f"unknown POPE parser {parser!r}; expected one of {get_args(Parser)}")
    if negative:
        return 0, True
    return 1, any(word.lower() == "yes" for word in words)


class Pope(Metric):
    """Accuracy, precision, recall, F1, predicted yes-ratio and unparseable share of POPE answers.

    ``Sample.target``: ``{"label": "yes" | "no", "question_id": ...}``; ``Prediction.text``: the answer.

    Args:
        parser: ``"official"`` (default), ``"opera"`` or ``"exact"``; see the module docstring.

    Raises:
        SampleError (per sample): a non-string answer, or a label other than "yes"/"no".
    """

    name = "pope"
    higher_is_better = {
        "accuracy": True,
        "precision": True,
        "recall": True,
        "f1": True,
        "yes_ratio": False,
        "unparseable": False,
    }
    definitions = {
        "accuracy": "(TP + TN) / N, with 'yes' as the positive class",
        "precision": "TP / (TP + FP); 0 when nothing is predicted 'yes'",
        "recall": "TP / (TP + FN); 0 when no counted answer has the label 'yes'",
        "f1": "2 * precision * recall / (precision + recall); 0 when both are 0",
        "yes_ratio": "share of answers parsed as 'yes' (predicted, not ground truth); about 0.5 is unbiased",
        "unparseable": "share of answers the parser could not read as an explicit yes or no",
    }

    def __init__(self, parser: Parser = "official") -> None:
        if parser not in get_args(Parser):
            raise ValueError(f"POPE parser must be one of {get_args(Parser)}, got {parser!r}")
        super().__init__(parser=parser)
        self.parser = parser

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        if not isinstance(prediction.text, str):
            raise SampleError(f"answer must be a string, got {type(prediction.text).__name__}")
        label = sample.target.get("label")
        if label not in ("yes", "no"):
            raise SampleError(f"target label must be 'yes' or 'no', got {label!r}")
        verdict, explicit = parse_answer(prediction.text, self.parser)
        return {"label": int(label == "yes"), "prediction": verdict, "explicit": explicit}

    def sample_values(self, record: Record) -> dict[str, float]:
        return {"correct": float(record["prediction"] == record["label"])}

    @staticmethod
    def _columns(records: Sequence[Record]) -> np.ndarray:
        """Per record: TP, FP, TN, FN, predicted yes, unparseable (0/1 each)."""
        label = np.array([r["label"] for r in records], dtype=int)
        guess = np.array([r["prediction"] for r in records], dtype=int)
        explicit = np.array([r["explicit"] for r in records], dtype=bool)
        return np.column_stack(
            [
                (guess == 1) & (label == 1),
                (guess == 1) & (label == 0),
                (guess == 0) & (label == 0),
                (guess == 0) & (label == 1),
                guess == 1,
                ~explicit,
            ]
        ).astype(float)

    @staticmethod
    def _values(sums: np.ndarray, count: int) -> dict[str, np.ndarray]:
        tp, fp, tn, fn, yes, unparseable = (sums[..., i] for i in range(6))
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return {
            "accuracy": (tp + tn) / count,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "yes_ratio": yes / count,
            "unparseable": unparseable / count,
        }

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return {key: float("nan") for key in self.higher_is_better}
        values = self._values(self._columns(records).sum(axis=0), len(records))
        return {key: float(value) for key, value in values.items()}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        if not records:
            return {}
        return self._values(resample_sums(draws, self._columns(records)), draws.shape[1])


__all__ = ["Parser", "Pope", "parse_answer"]
