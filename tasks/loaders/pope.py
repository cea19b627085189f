"""POPE question/label files: JSON Lines (COCO) or JSON arrays (A-OKVQA, GQA) of ``{question_id, image, text, label}``.

Also identifies the data version: POPE commit ``e3e3926`` (shipped by LLaVA, OPERA and LIRA) has
2,910 questions in COCO ``random`` and the "imange" typo; POPE HEAD has 3,000 and no typo
(metrics.md §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError
from tasks.loaders.common import field, read_records

ANSWER_SUFFIX = "\nAnswer the question using a single word or phrase."
"""LLaVA's suffix; ``llava_pope_test.jsonl`` texts already end with it."""


@dataclass(frozen=True)
class PopeQuestion:
    question_id: str
    image: str
    text: str
    label: str


def load_pope(path: Path) -> list[PopeQuestion]:
    """Questions in file order (the order the official scorer pairs answers and labels by)."""
    questions: list[PopeQuestion] = []
    seen: set[str] = set()
    for location, row in read_records(path, "POPE file"):
        where = f"POPE file {path} {location}"
        question_id = str(field(row, "question_id", (int, str), where))
        label = field(row, "label", str, where).strip().lower()
        if label not in ("yes", "no"):
            raise DataError(f"{where}: field 'label' must be 'yes' or 'no', got {row['label']!r}")
        if question_id in seen:
            raise DataError(f"{where}: question_id {question_id} appears twice")
        seen.add(question_id)
        text = field(row, "text", str, where)
        questions.append(
            PopeQuestion(question_id, field(row, "image", str, where), text.removesuffix(ANSWER_SUFFIX), label)
        )
    if not questions:
        raise DataError(f"POPE file {path} holds no question")
    return questions


def data_version(source: str, setting: str, questions: list[PopeQuestion]) -> dict[str, Any]:
    """Counts and the POPE release they identify (``e3e3926``, ``HEAD``, or ``nonstandard``)."""
    count = len(questions)
    typos = sum("imange" in question.text for question in questions)
    if source == "coco" and setting == "random" and count == 2910:
        version = "e3e3926"
    elif count == 3000 and (source != "coco" or typos == 0):
        version = "HEAD" if source == "coco" else "seem"
    elif source == "coco" and count == 3000 and typos:
        version = "e3e3926"
    else:
        version = "nonstandard"
    return {
        "version": version,
        "questions": count,
        "yes": sum(question.label == "yes" for question in questions),
        "no": sum(question.label == "no" for question in questions),
        "imange_typos": typos,
    }


__all__ = ["ANSWER_SUFFIX", "PopeQuestion", "data_version", "load_pope"]
