"""The replay adapter: scores predictions produced elsewhere, read from a file in a known format.

``--model replay --model-args predictions=PATH[,format=NAME]``. The default format is attreval's own
JSONL, one line per sample: ``{"task", "sample_id", "text", "masks", "phrases"}`` (optionally
``"probes"``). Importers for other code bases' native outputs register further formats in
`REPLAY_FORMATS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.model import ModelAdapter
from harness.registry import Registry
from harness.results import read_jsonl
from harness.types import REQUEST_KINDS, Prediction, Request, prediction_from_dict

ReplayKey = tuple[str | None, str]
"""(task name or ``None`` when the format does not say, sample id)."""

Importer = Callable[[Path], dict[ReplayKey, Prediction]]


def _validate_importer(name: str, obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"replay format {name!r} must be a callable path -> predictions, got {obj!r}")


REPLAY_FORMATS: Registry[Importer] = Registry("replay format", _validate_importer)


def _field_error(path: Path, number: int, message: str) -> DataError:
    return DataError(f"replay file {path} line {number}: {message}")


def parse_replay_line(row: dict[str, Any], path: Path, number: int) -> tuple[ReplayKey, Prediction]:
    """Validate one attreval replay line and convert it to a prediction."""
    for name, kind in (("task", str), ("sample_id", (str, int))):
        if name not in row:
            raise _field_error(path, number, f"missing field {name!r}")
        if not isinstance(row[name], kind):
            raise _field_error(path, number, f"field {name!r} must be a string, got {type(row[name]).__name__}")
    text = row.get("text", "")
    if not isinstance(text, str):
        raise _field_error(path, number, f"field 'text' must be a string, got {type(text).__name__}")
    masks = row.get("masks", [])
    if not isinstance(masks, list) or not all(
        isinstance(m, dict) and isinstance(m.get("size"), list) and isinstance(m.get("counts"), str) for m in masks
    ):
        raise _field_error(path, number, "field 'masks' must be a list of RLE objects {'size': [h, w], 'counts': str}")
    phrases = row.get("phrases", [])
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise _field_error(path, number, "field 'phrases' must be a list of strings")
    try:
        prediction = prediction_from_dict(
            {"text": text, "masks": masks, "phrases": phrases, "probes": row.get("probes", [])}
        )
    except (KeyError, TypeError, ValueError) as error:
        raise _field_error(path, number, f"field 'probes' is malformed ({error})") from None
    return (row["task"], str(row["sample_id"])), prediction


def load_attreval_replay(path: Path) -> dict[ReplayKey, Prediction]:
    """Read attreval's replay JSONL; a duplicate (task, sample_id) is an error naming both lines."""
    predictions: dict[ReplayKey, Prediction] = {}
    lines: dict[ReplayKey, int] = {}
    for number, row in enumerate(read_jsonl(path, "replay file"), start=1):
        key, prediction = parse_replay_line(row, path, number)
        if key in predictions:
            raise _field_error(path, number, f"{key[0]} sample {key[1]!r} already appeared on line {lines[key]}")
        predictions[key], lines[key] = prediction, number
    return predictions


REPLAY_FORMATS.register("attreval", load_attreval_replay)


class ReplayAdapter(ModelAdapter):
    """Serves predictions read from ``predictions`` (a file or folder) in format ``format``."""

    capabilities = frozenset({"text", "masks", "probes"})
    request_kinds = frozenset(REQUEST_KINDS)
    preferred_batch_size = 256

    def __init__(self, predictions: Path, format: str = "attreval") -> None:
        super().__init__(predictions=predictions, format=format)
        self.path = Path(predictions)
        if not self.path.exists():
            raise DataError(f"replay predictions {self.path} do not exist")
        self._predictions = REPLAY_FORMATS.get(format)(self.path)

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        answers = []
        for request in requests:
            found = self._predictions.get((request.task, request.sample_id))
            if found is None:
                found = self._predictions.get((None, request.sample_id))
            if found is None:
                found = Prediction(error=f"NotInReplay: {self.path} has no prediction for {request.sample_id!r}")
            answers.append(found)
        return answers

    def fingerprint(self) -> str:
        """Depends on the full content of the prediction file(s)."""
        digest = hashlib.sha256(super().fingerprint().encode())
        files = sorted(p for p in self.path.rglob("*") if p.is_file()) if self.path.is_dir() else [self.path]
        for file in files:
            digest.update(str(file.relative_to(self.path) if self.path.is_dir() else file.name).encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return digest.hexdigest()
