"""AttrEval, built reproducibly from RefCOCO / RefCOCO+ / RefCOCOg annotations and COCO images.

``python -m dataset_builders.attreval --data-root DIR --dataset refcoco --split val --out OUT [--seed S]``
reads ``refs(<splitBy>).p`` and ``instances.json`` through the RefCOCO loader (`tasks.loaders.refer`,
restricted unpickler) in the data root's layout, and writes into OUT:

- the **QA track** ``refcoco_attri.jsonl``: per kept attribute of a referred object, a pair of yes/no
  questions (the true value, a hard negative of the same family) on consecutive lines, in the format
  LIRA's ``evaluate_vqa.py`` reads, so LIRA's paired accuracy applies (task ``attreval_qa``);
- the **segmentation track** in REFER format (``refs(<splitBy>).p``, ``instances.json``) and as
  ``seg.jsonl``: attribute-only referring expressions that leave out the category noun and still single
  the object out, with the ground-truth mask (task ``attreval_seg``);
- ``datasets/{qa,seg}`` (`datasets.Dataset.save_to_disk`), ``DATASHEET.md`` and ``build.json``.

The tasks read OUT = ``DATA_ROOT/attreval/<dataset>_<split>`` by default. How attributes are read and
checked: `build`, `language`, `colors`, `scene` (and the datasheet of every build).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from dataset_builders.attreval.build import Balance, Items, build_items
from dataset_builders.attreval.datasheet import counts, datasheet
from dataset_builders.attreval.output import image_reference, refs_file, write_tracks
from dataset_builders.attreval.scene import Rules
from harness.errors import DataError, UserError
from tasks.layout import REFER_FOLDERS, pick_layout
from tasks.loaders.refer import SPLITS_BY_PARTITION, check_split, load_instances, load_refs

BUILDER_VERSION = 1
DEFAULT_SPLIT_BY: dict[str, str] = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
SUMMARY = "build.json"
DATASHEET = "DATASHEET.md"


def default_output(data_root: Path, dataset: str, split: str) -> Path:
    """Where the attreval tasks look for a build by default: ``DATA_ROOT/attreval/<dataset>_<split>``."""
    return Path(data_root) / "attreval" / f"{dataset}_{split}"


@dataclass(frozen=True)
class BuildResult:
    """Where a build went and its counts (the content of ``build.json``)."""

    out: Path
    summary: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def made_by_builder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``build.json`` written by this builder."""
    try:
        found = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("builder") == "dataset_builders.attreval"


def build(
    data_root: Path,
    out: Path,
    *,
    dataset: str = "refcoco",
    splits: Sequence[str] = ("val",),
    split_by: str | None = None,
    seed: int = 0,
    balance: Balance = "min",
    rules: Rules | None = None,
    layout: str = "auto",
    images: Path | None = None,
    export_datasets: bool = True,
) -> BuildResult:
    """Build AttrEval from the REFER files of ``dataset`` under ``data_root`` into ``out``.

    ``out`` is written beside itself and moved into place; an existing ``out`` is replaced only when this
    builder made it (or it is empty).

    Raises:
        UserError: an unknown dataset or split, or an ``out`` folder that holds something else.
        DataError: a refs pickle or instances file that is missing or malformed.
    """
    if dataset not in DEFAULT_SPLIT_BY:
        raise UserError(f"unknown dataset {dataset!r}; expected one of {', '.join(DEFAULT_SPLIT_BY)}")
    split_by = split_by or DEFAULT_SPLIT_BY[dataset]
    if not splits:
        raise UserError("no split given")
    for split in splits:
        check_split(split, split_by)
    if balance not in ("min", "none"):
        raise UserError(f"balance must be 'min' or 'none', got {balance!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not made_by_builder(out):
        raise UserError(f"{out} exists and was not made by this builder; choose another --out")
    data_root = Path(data_root)
    annotation_folder, image_folder = pick_layout(data_root, layout, REFER_FOLDERS, dataset=dataset)  # type: ignore[arg-type]
    image_folder = Path(images) if images is not None else image_folder
    refs_path, instances_path = annotation_folder / refs_file(split_by), annotation_folder / "instances.json"
    for path, what in ((refs_path, "refs pickle"), (instances_path, "instances file")):
        if not path.is_file():
            raise DataError(f"{what} {path} does not exist (expected the {dataset} REFER files under {data_root})")
    refs = load_refs(refs_path)
    instances = load_instances(instances_path)
    rules = rules or Rules()
    items: Items = build_items(refs, instances, image_folder, list(splits), seed=seed, rules=rules, balance=balance)

    staging = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    image_path = partial(image_reference, image_folder, data_root)
    qa, seg = write_tracks(
        staging,
        items,
        instances,
        dataset=dataset,
        split_by=split_by,
        image_path=image_path,
        export_datasets=export_datasets,
    )
    summary = {
        "builder": "dataset_builders.attreval",
        "version": BUILDER_VERSION,
        "config": {
            "dataset": dataset,
            "splits": list(splits),
            "split_by": split_by,
            "seed": seed,
            "balance": balance,
            "rules": asdict(rules),
        },
        "sources": {
            "refs": {"file": refs_path.name, "sha256": _sha256(refs_path)},
            "instances": {"file": instances_path.name, "sha256": _sha256(instances_path)},
        },
        "refs_seen": items.refs_seen,
        "images_seen": items.images_seen,
        "kept": {name: items.tally.kept[name] for name in ("category", "color", "position", "relation")},
        "counts": counts(qa, seg),
        "rejected": [
            {"stage": stage, "reason": reason, "count": count}
            for (stage, reason), count in sorted(items.tally.rejected.items())
        ],
    }
    (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (staging / DATASHEET).write_text(datasheet(summary, qa, seg), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return BuildResult(out, summary)


__all__ = [
    "BUILDER_VERSION",
    "DATASHEET",
    "DEFAULT_SPLIT_BY",
    "SPLITS_BY_PARTITION",
    "SUMMARY",
    "BuildResult",
    "Rules",
    "build",
    "default_output",
    "made_by_builder",
]
