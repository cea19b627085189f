"""Writing a build: the QA JSONL, the segmentation track in REFER format and as JSONL, `datasets` folders.

Files under the output folder (all deterministic for a given input and seed):

- ``refcoco_attri.jsonl``: the QA track, pairs on consecutive lines, in LIRA's format (``image``,
  ``question``, ``question_id``, ``answer``) plus ``attribute`` (the type), ``value`` (the word asked
  about), ``truth`` (the true word), ``subject``, ``ref_id``, ``ann_id``, ``image_id`` and ``split``;
- ``refs(<splitBy>).p`` and ``instances.json``: the segmentation track in REFER format (one ref per
  source ref, its sentences the attribute-only expressions, each with its ``attribute`` type; the ref's
  ``attributes`` lists every kept attribute word), read by the RefCOCO loader;
- ``seg.jsonl``: the same expressions, one per line, with the ground-truth mask as RLE;
- ``datasets/qa`` and ``datasets/seg``: both tracks as `datasets.Dataset.save_to_disk` folders.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dataset_builders.attreval.build import Items, QAPair, SegItem
from dataset_builders.coco import categories_json
from tasks.loaders.refer import Instances

QA_FILE = "refcoco_attri.jsonl"
SEG_FILE = "seg.jsonl"
INSTANCES_FILE = "instances.json"
DATASETS_FOLDER = "datasets"


def refs_file(split_by: str) -> str:
    return f"refs({split_by}).p"


def _dump_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def image_reference(image_folder: Path, data_root: Path, file_name: str) -> str:
    """The image path written into the QA file: relative to the data root when the folder lies inside it."""
    path = image_folder / file_name
    try:
        return path.relative_to(data_root).as_posix()
    except ValueError:
        return str(path.resolve())


def qa_rows(pairs: Sequence[QAPair], dataset: str, image_path: Any) -> list[dict[str, Any]]:
    """Two rows per pair, the true one first in even pairs and second in odd ones (as many of each)."""
    rows = []
    for number, pair in enumerate(pairs):
        target = pair.target
        common = {
            "image": image_path(target.image.file_name),
            "attribute": pair.attribute,
            "truth": pair.truth,
            "subject": pair.subject,
            "ref_id": target.ref.ref_id,
            "ann_id": target.obj.ann_id,
            "image_id": target.image.id,
            "split": pair.split,
        }
        stem = f"{dataset}:{pair.split}:{pair.key}"
        positive = {"question": pair.positive_question, "question_id": f"{stem}:yes", "answer": "yes"}
        negative = {"question": pair.negative_question, "question_id": f"{stem}:no", "answer": "no"}
        ordered = [(positive, pair.truth), (negative, pair.negative)]
        if number % 2:
            ordered.reverse()
        for fields, value in ordered:
            rows.append(
                {
                    "image": common["image"],
                    "question": fields["question"],
                    "question_id": fields["question_id"],
                    "answer": fields["answer"],
                    "attribute": pair.attribute,
                    "value": value,
                    **{key: common[key] for key in ("truth", "subject", "ref_id", "ann_id", "image_id", "split")},
                }
            )
    return rows


def seg_rows(items: Sequence[SegItem], image_path: Any) -> list[dict[str, Any]]:
    """One row per expression; ``sent_id`` numbers the expressions in file order from 1."""
    rows = []
    for number, item in enumerate(items, start=1):
        target = item.target
        rows.append(
            {
                "image": image_path(target.image.file_name),
                "expression": item.expression,
                "attribute": item.attribute,
                "ref_id": target.ref.ref_id,
                "ann_id": target.obj.ann_id,
                "image_id": target.image.id,
                "sent_id": number,
                "split": item.split,
                "category": target.obj.category,
                "supercategory": target.obj.supercategory,
                "attributes": item.attributes,
                "bbox": [round(v, 2) for v in target.obj.box],
                "mask": dict(target.mask),
            }
        )
    return rows


def refer_files(
    items: Sequence[SegItem], rows: Sequence[dict[str, Any]], instances: Instances
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The refs list and the ``instances.json`` content of the segmentation track."""
    refs: dict[tuple[str, int], dict[str, Any]] = {}
    for item, row in zip(items, rows, strict=True):
        ref, target = item.target.ref, item.target
        entry = refs.get((item.split, ref.ref_id))
        if entry is None:
            annotation = instances.annotations.get(target.obj.ann_id)
            stem = target.image.file_name.rsplit(".", 1)[0]
            entry = refs[(item.split, ref.ref_id)] = {
                "ref_id": ref.ref_id,
                "ann_id": target.obj.ann_id,
                "image_id": target.image.id,
                "category_id": None if annotation is None else annotation.category_id,
                "split": item.split,
                "file_name": f"{stem}_{target.obj.ann_id}.jpg",
                "sent_ids": [],
                "sentences": [],
                "attributes": item.attributes,
            }
        words = item.expression.split()
        entry["sent_ids"].append(row["sent_id"])
        entry["sentences"].append(
            {
                "sent_id": row["sent_id"],
                "sent": item.expression,
                "raw": item.expression,
                "tokens": words,
                "attribute": item.attribute,
            }
        )
    image_ids = sorted({item.target.image.id for item in items})
    annotations = []
    for ann_id, annotation in sorted(instances.annotations.items()):
        if annotation.image_id not in image_ids:
            continue
        record: dict[str, Any] = {
            "id": ann_id,
            "image_id": annotation.image_id,
            "category_id": annotation.category_id,
            "segmentation": instances.segmentations[ann_id],
        }
        if annotation.bbox is not None:
            record["bbox"] = list(annotation.bbox)
        annotations.append(record)
    categories = [
        {"id": c.id, "name": c.name, "supercategory": c.supercategory} for _, c in sorted(instances.categories.items())
    ] or categories_json()
    images = [
        {
            "id": image_id,
            "file_name": instances.images[image_id].file_name,
            "height": instances.images[image_id].height,
            "width": instances.images[image_id].width,
        }
        for image_id in image_ids
    ]
    return list(refs.values()), {"images": images, "annotations": annotations, "categories": categories}


def _write_datasets(folder: Path, qa: list[dict[str, Any]], seg: list[dict[str, Any]]) -> None:
    import datasets

    text = datasets.Value("string")
    number = datasets.Value("int64")
    qa_features = datasets.Features(
        {
            **{key: text for key in ("image", "question", "question_id", "answer", "attribute", "value", "truth")},
            "subject": text,
            **{key: number for key in ("ref_id", "ann_id", "image_id")},
            "split": text,
        }
    )
    attribute_names = ("category", "supercategory", "color", "position", "relation", "relation_object")
    seg_features = datasets.Features(
        {
            **{key: text for key in ("image", "expression", "attribute")},
            **{key: number for key in ("ref_id", "ann_id", "image_id", "sent_id")},
            **{key: text for key in ("split", "category", "supercategory")},
            "attributes": {name: datasets.Sequence(text) for name in attribute_names},
            "bbox": datasets.Sequence(datasets.Value("float64")),
            "mask_size": datasets.Sequence(number),
            "mask_counts": text,
        }
    )
    seg_table = [
        {
            **{key: row[key] for key in row if key not in ("mask", "attributes")},
            "attributes": {name: row["attributes"].get(name, []) for name in attribute_names},
            "mask_size": row["mask"]["size"],
            "mask_counts": row["mask"]["counts"],
        }
        for row in seg
    ]
    hidden = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        for name, table, features in (("qa", qa, qa_features), ("seg", seg_table, seg_features)):
            columns = {key: [row[key] for row in table] for key in features}
            datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(folder / name))
    finally:
        if not hidden:
            datasets.enable_progress_bars()


def write_tracks(
    out: Path,
    items: Items,
    instances: Instances,
    *,
    dataset: str,
    split_by: str,
    image_path: Any,
    export_datasets: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write every track file under ``out``; returns the QA and seg rows."""
    qa = qa_rows(items.qa, dataset, image_path)
    seg = seg_rows(items.seg, image_path)
    _dump_lines(out / QA_FILE, qa)
    _dump_lines(out / SEG_FILE, seg)
    refs, instances_json = refer_files(items.seg, seg, instances)
    (out / refs_file(split_by)).write_bytes(pickle.dumps(refs, protocol=2))
    (out / INSTANCES_FILE).write_text(json.dumps(instances_json, separators=(",", ":")) + "\n", encoding="utf-8")
    if export_datasets:
        _write_datasets(out / DATASETS_FOLDER, qa, seg)
    return qa, seg


__all__ = [
    "DATASETS_FOLDER",
    "INSTANCES_FILE",
    "QA_FILE",
    "SEG_FILE",
    "image_reference",
    "qa_rows",
    "refer_files",
    "refs_file",
    "seg_rows",
    "write_tracks",
]
