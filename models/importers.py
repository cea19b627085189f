"""Replay importers: other code bases' native output files -> predictions keyed by (task, sample id).

``--model replay --model-args predictions=PATH,format=NAME`` with NAME one of:

- ``llava_pope``: LLaVA's POPE answer JSON Lines (``question_id``, ``text``, ...) or LIRA's JSON array of
  ``{question_id, text, metadata}``. Ids numbered like ``llava_pope_test.jsonl`` (adversarial 1-3000,
  random 10000001-, popular 20000001-; data-formats.md §4.2) map to ``pope_{setting}`` and the
  question id within that setting's file; a file whose ids are all below 10,000,000 answers one
  question file and is matched by question id in whichever POPE task is run.
- ``glamm_gcg``: a folder of per-image ``{image_id}.json`` as written by GLaMM ``eval/gcg/infer.py`` and
  LIRA ``gcg_lira.py`` (``caption``, ``phrases``, ``pred_masks`` RLE; flat or wrapped under one key).
- ``opera_chair``: OPERA / LIRA caption JSON Lines (or a JSON list) with ``image_id`` and ``caption``.
- ``lira_vqa``: LIRA ``evaluate_vqa.py`` results (``results/refcoco_attri_<time>.json``): a JSON array of
  ``{image: <question_id>, question, answer: <model answer>, annotation}``, for AttrEval.
- ``refseg_jsonl``: JSON Lines of ``{"sample_id": "ref_id:sent_id", "mask": RLE or null}`` (optionally
  ``"task"``, ``"text"``); ``null`` means the model produced no ``[SEG]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycocotools import mask as coco_mask

from harness import masks
from harness.errors import DataError, SampleError
from harness.types import RLE, Prediction
from models.replay import ReplayKey
from tasks.loaders.common import read_records, read_values

LLAVA_POPE_SETTINGS = {0: "adversarial", 1: "random", 2: "popular"}
"""``llava_pope_test.jsonl`` question id // 10,000,000 -> POPE setting."""

_BLOCK = 10_000_000


def _rle(value: Any, where: str) -> RLE:
    """A predicted mask: compressed RLE, or uncompressed RLE (list counts) converted as GLaMM does."""
    if isinstance(value, dict) and isinstance(value.get("counts"), list) and isinstance(value.get("size"), list):
        try:
            converted = coco_mask.frPyObjects(value, *value["size"])
        except (TypeError, ValueError, IndexError) as error:
            raise DataError(f"{where}: not an RLE mask ({error})") from None
        value = {"size": [int(v) for v in converted["size"]], "counts": converted["counts"].decode("ascii")}
    try:
        return masks.validate(value, what=where)
    except SampleError as error:
        raise DataError(str(error)) from None


def _text(row: dict[str, Any], key: str, where: str) -> str:
    if key not in row:
        raise DataError(f"{where}: missing field {key!r} (expected a string)")
    if not isinstance(row[key], str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(row[key]).__name__}")
    return row[key]


def _integer_id(row: dict[str, Any], key: str, where: str) -> int:
    value = row.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(f"{where}: field {key!r} must be an integer id, got {value!r}")
    return value


def _add(found: dict[ReplayKey, Prediction], key: ReplayKey, prediction: Prediction, where: str) -> None:
    if key in found:
        raise DataError(f"{where}: a second prediction for {key[0] or 'sample'} {key[1]!r}")
    found[key] = prediction


def load_llava_pope(path: Path) -> dict[ReplayKey, Prediction]:
    """LLaVA / LIRA POPE answers (see the module docstring for how ids map to tasks)."""
    rows = [(f"replay file {path} {location}", row) for location, row in read_records(path, "replay file")]
    ids = [_integer_id(row, "question_id", where) for where, row in rows]
    llava_numbering = any(question_id >= _BLOCK for question_id in ids)
    found: dict[ReplayKey, Prediction] = {}
    for (where, row), question_id in zip(rows, ids, strict=True):
        prediction = Prediction(text=_text(row, "text", where))
        if not llava_numbering:
            _add(found, (None, str(question_id)), prediction, where)
            continue
        setting = LLAVA_POPE_SETTINGS.get(question_id // _BLOCK)
        if setting is None:
            raise DataError(f"{where}: question_id {question_id} is outside llava_pope_test.jsonl's ranges")
        _add(found, (f"pope_{setting}", str(question_id % _BLOCK)), prediction, where)
    return found


def load_glamm_gcg(path: Path) -> dict[ReplayKey, Prediction]:
    """GLaMM / LIRA per-image GCG predictions; the file stem is the image id, as GLaMM's evaluator reads them."""
    if not path.is_dir():
        raise DataError(f"glamm_gcg predictions {path} must be a folder of <image_id>.json files")
    found: dict[ReplayKey, Prediction] = {}
    for file in sorted(path.glob("*.json")):
        where = f"GCG prediction {file}"
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataError(f"{where} is not valid JSON (line {error.lineno}: {error.msg})") from None
        if not isinstance(data, dict) or not data:
            raise DataError(f"{where}: expected a JSON object with caption, phrases and pred_masks")
        first = next(iter(data.values()))
        record = first if isinstance(first, dict) and "caption" in first else data  # GLaMM: wrapped, else flat
        phrases = record.get("phrases", [])
        pred_masks = record.get("pred_masks", [])
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise DataError(f"{where}: field 'phrases' must be a list of strings")
        if not isinstance(pred_masks, list):
            raise DataError(f"{where}: field 'pred_masks' must be a list of RLE masks")
        prediction = Prediction(
            text=_text(record, "caption", where),
            phrases=tuple(p.strip() for p in phrases),
            masks=tuple(_rle(mask, f"{where} pred_masks[{index}]") for index, mask in enumerate(pred_masks)),
        )
        _add(found, (None, file.stem), prediction, where)
    if not found:
        raise DataError(f"glamm_gcg predictions {path} holds no .json file")
    return found


def load_opera_chair(path: Path) -> dict[ReplayKey, Prediction]:
    """OPERA ``chair_eval.py`` / LIRA ``evaluate_chair.py`` captions keyed by COCO image id."""
    found: dict[ReplayKey, Prediction] = {}
    for location, row in read_values(path, "replay file"):
        where = f"replay file {path} {location}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with image_id and caption")
        image_id = _integer_id(row, "image_id", where)
        _add(found, (None, str(image_id)), Prediction(text=_text(row, "caption", where)), where)
    return found


def load_lira_vqa(path: Path) -> dict[ReplayKey, Prediction]:
    """LIRA's VQA results, keyed by question id (which LIRA stores under ``image``)."""
    found: dict[ReplayKey, Prediction] = {}
    for location, row in read_records(path, "replay file"):
        where = f"replay file {path} {location}"
        question_id = row.get("image")
        if not isinstance(question_id, (str, int)) or isinstance(question_id, bool):
            raise DataError(f"{where}: field 'image' must hold the question id (a string or an integer)")
        _add(found, (None, str(question_id)), Prediction(text=_text(row, "answer", where)), where)
    return found


def load_refseg_jsonl(path: Path) -> dict[ReplayKey, Prediction]:
    """Referring-segmentation masks per sentence; ``"mask": null`` is an answer without ``[SEG]``."""
    found: dict[ReplayKey, Prediction] = {}
    for location, row in read_records(path, "replay file"):
        where = f"replay file {path} {location}"
        sample_id = _text(row, "sample_id", where)
        task = row.get("task")
        if task is not None and not isinstance(task, str):
            raise DataError(f"{where}: field 'task' must be a string")
        if "mask" not in row and "masks" not in row:
            raise DataError(f"{where}: missing field 'mask' (an RLE object, or null for no [SEG])")
        given = row.get("masks", [row.get("mask")] if row.get("mask") is not None else [])
        if not isinstance(given, list):
            raise DataError(f"{where}: field 'masks' must be a list of RLE masks")
        text = row.get("text", "[SEG]" if given else "")
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'text' must be a string")
        prediction = Prediction(text=text, masks=tuple(_rle(m, f"{where} mask") for m in given))
        _add(found, (task, sample_id), prediction, where)
    return found


__all__ = ["load_glamm_gcg", "load_lira_vqa", "load_llava_pope", "load_opera_chair", "load_refseg_jsonl"]
