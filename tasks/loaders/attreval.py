"""AttrEval questions: ``refcoco_attri.jsonl`` as LIRA's ``evaluate_vqa.py`` reads it (data-formats.md §6).

One JSON object per line with ``image`` (a path), ``question``, ``question_id`` and ``answer``; an
optional ``attribute`` names what is asked (category, color, position, relation, ...). Lines are
scored in consecutive pairs, so file order is kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError
from tasks.loaders.common import field, read_records


@dataclass(frozen=True)
class AttrQuestion:
    question_id: str
    image: str
    question: str
    answer: str
    attribute: str | None


def load_attreval(path: Path) -> list[AttrQuestion]:
    """All questions in file order; pairs are lines (1, 2), (3, 4), ..."""
    questions: list[AttrQuestion] = []
    seen: dict[str, str] = {}
    for location, row in read_records(path, "AttrEval file"):
        where = f"AttrEval file {path} {location}"
        question_id = str(field(row, "question_id", (str, int), where))
        if question_id in seen:
            raise DataError(f"{where}: question_id {question_id!r} already appeared on {seen[question_id]}")
        seen[question_id] = location
        attribute = row.get("attribute")
        if attribute is not None and not isinstance(attribute, str):
            raise DataError(f"{where}: field 'attribute' must be a string, got {type(attribute).__name__}")
        questions.append(
            AttrQuestion(
                question_id=question_id,
                image=field(row, "image", str, where),
                question=field(row, "question", str, where),
                answer=field(row, "answer", str, where),
                attribute=attribute,
            )
        )
    if not questions:
        raise DataError(f"AttrEval file {path} holds no question")
    return questions


__all__ = ["AttrQuestion", "load_attreval"]
