"""A benchmark description and its writer: every task's real file format, in LIRA's ``data/`` layout.

Files written under the root (data-formats.md):

- ``ref_seg/{refcoco,refcoco+}/refs(unc).p``, ``ref_seg/refcocog/refs(umd).p``, ``ref_seg/*/instances.json``
- ``glamm_data/images/coco2014/train2014/COCO_train2014_*.jpg`` (RefCOCO family, AttrEval)
- ``glamm_data/annotations/gcg_val_test/{val,test}_gcg_coco_{caption,mask}_gt.json``,
  ``glamm_data/images/grandf/val_test/sa_*.jpg``
- ``pope/coco/coco_pope_*.json`` (JSON Lines), ``pope/{aokvqa,gqa}/*_pope_seem_*.json`` (JSON arrays),
  ``coco/val2014/COCO_val2014_*.jpg``, ``gqa/images/*.jpg``
- ``chair/annotations/{captions,instances}_{train,val}2014.json`` (single-line JSON), ``chair/chair_test.jsonl``
- ``refcoco_attri/refcoco_attri.jsonl``
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from dataset_builders.coco import CATEGORY_IDS, categories_json

POPE_SETTINGS = ("random", "popular", "adversarial")
REFER_DATASETS = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


@dataclass(frozen=True)
class ImageEntry:
    """One picture and its ids under the three naming schemes; ``pixels`` renders it (H, W, 3 uint8)."""

    key: str
    height: int
    width: int
    pixels: Callable[[], np.ndarray]
    train_id: int
    val_id: int
    grandf_id: str


@dataclass(frozen=True)
class ObjectEntry:
    """An annotated object: COCO category name (``None`` outside COCO) and polygons in pixels."""

    key: str
    image: str
    category: str | None
    polygons: list[list[float]]


@dataclass(frozen=True)
class RefEntry:
    dataset: str
    object: str
    split: str
    sentences: list[str]


@dataclass(frozen=True)
class GcgEntry:
    split: str
    image: str
    caption: str
    groundings: list[tuple[str, list[str]]]
    """(phrase, object keys whose union is the phrase's mask), in caption order."""


@dataclass(frozen=True)
class PopeEntry:
    image: str
    present: list[str]
    absent: dict[str, list[str]]
    """POPE setting -> absent objects (as many as ``present``)."""


@dataclass(frozen=True)
class AttrPair:
    image: str
    attribute: str
    questions: list[tuple[str, str]]
    """Two (question, answer) pairs, scored together."""


@dataclass
class Benchmark:
    images: list[ImageEntry]
    objects: list[ObjectEntry]
    refs: list[RefEntry] = field(default_factory=list)
    gcg: list[GcgEntry] = field(default_factory=list)
    pope: list[PopeEntry] = field(default_factory=list)
    captions: dict[str, list[str]] = field(default_factory=dict)
    attreval: list[AttrPair] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Checks: a benchmark that contradicts itself is refused before anything is written
# ---------------------------------------------------------------------------


def check(benchmark: Benchmark) -> None:
    """Raise ValueError naming the first inconsistency (unknown keys, polygons off the image, ...)."""
    images = {image.key: image for image in benchmark.images}
    objects = {obj.key: obj for obj in benchmark.objects}
    for obj in benchmark.objects:
        image = images.get(obj.image)
        if image is None:
            raise ValueError(f"object {obj.key}: unknown image {obj.image!r}")
        if obj.category is not None and obj.category not in CATEGORY_IDS:
            raise ValueError(f"object {obj.key}: {obj.category!r} is not a COCO category")
        for polygon in obj.polygons:
            xs, ys = polygon[0::2], polygon[1::2]
            if (
                len(polygon) < 6
                or len(polygon) % 2
                or min(xs) < 0
                or min(ys) < 0
                or max(xs) > image.width
                or max(ys) > image.height
            ):
                raise ValueError(
                    f"object {obj.key}: a polygon is malformed or leaves the {image.width}x{image.height} image"
                )
    for ref in benchmark.refs:
        if ref.dataset not in REFER_DATASETS or objects.get(ref.object) is None:
            raise ValueError(f"ref {ref}: unknown dataset or object")
        if objects[ref.object].category is None:
            raise ValueError(f"ref on {ref.object}: RefCOCO refers to COCO objects only")
    for entry in benchmark.gcg:
        position = 0
        for phrase, keys in entry.groundings:
            found = entry.caption.find(phrase, position)
            if found < 0 or any(key not in objects or objects[key].image != entry.image for key in keys):
                raise ValueError(
                    f"GCG {entry.image}: phrase {phrase!r} is not in the caption in order, or its objects are wrong"
                )
            position = found + len(phrase)
    for entry in benchmark.pope:
        if any(len(entry.absent[setting]) != len(entry.present) for setting in POPE_SETTINGS):
            raise ValueError(f"POPE {entry.image}: each setting needs as many absent as present objects")
        if set(entry.present) & {word for words in entry.absent.values() for word in words}:
            raise ValueError(f"POPE {entry.image}: an object is both present and absent")
    for pair in benchmark.attreval:
        if len(pair.questions) != 2 or pair.image not in images:
            raise ValueError(f"AttrEval pair on {pair.image}: needs a known image and exactly two questions")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def train_name(image: ImageEntry) -> str:
    return f"COCO_train2014_{image.train_id:012d}.jpg"


def val_name(image: ImageEntry) -> str:
    return f"COCO_val2014_{image.val_id:012d}.jpg"


TRAIN_IMAGES = "glamm_data/images/coco2014/train2014"
VAL_IMAGES = "coco/val2014"
GRANDF_IMAGES = "glamm_data/images/grandf/val_test"
GQA_IMAGES = "gqa/images"


def _dump(path: Path, data: Any, *, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    separators = None if indent else (",", ":")
    path.write_text(json.dumps(data, indent=indent, separators=separators, ensure_ascii=False) + "\n", encoding="utf-8")


def _dump_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _rle(polygons: list[list[float]], image: ImageEntry) -> dict[str, Any]:
    """The union of ``polygons`` as compressed RLE (string counts)."""
    merged = coco_mask.merge(coco_mask.frPyObjects([list(map(float, p)) for p in polygons], image.height, image.width))
    return {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}


def _box_and_area(rle: dict[str, Any]) -> tuple[list[float], float]:
    native = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return [round(float(v), 2) for v in coco_mask.toBbox(native)], float(coco_mask.area(native))


def _instance(ann_id: int, image_id: int, obj: ObjectEntry, image: ImageEntry) -> dict[str, Any]:
    box, area = _box_and_area(_rle(obj.polygons, image))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS[obj.category],  # type: ignore[index]
        "segmentation": obj.polygons,
        "area": area,
        "bbox": box,
        "iscrowd": 0,
    }


def _image_record(image_id: int | str, file_name: str, image: ImageEntry) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "height": image.height, "width": image.width}


def _tokens(raw: str) -> list[str]:
    """REFER's normalised sentence: lower case, words only."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", raw.lower())


def write_images(benchmark: Benchmark, root: Path) -> None:
    """Every image as JPEG under the train2014, val2014, GranD-f and GQA names (encoded once)."""
    for folder in (TRAIN_IMAGES, VAL_IMAGES, GRANDF_IMAGES, GQA_IMAGES):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image in benchmark.images:
        buffer = io.BytesIO()
        Image.fromarray(image.pixels()).save(buffer, format="JPEG", quality=92)
        data = buffer.getvalue()
        for folder, name in (
            (TRAIN_IMAGES, train_name(image)),
            (VAL_IMAGES, val_name(image)),
            (GRANDF_IMAGES, f"{image.grandf_id}.jpg"),
            (GQA_IMAGES, f"{image.val_id}.jpg"),
        ):
            (root / folder / name).write_bytes(data)


def write_refer(benchmark: Benchmark, root: Path, ann_ids: dict[str, int]) -> None:
    """``refs(*).p`` (plain pickle, protocol 2 like the originals) and ``instances.json`` per dataset."""
    images = {image.key: image for image in benchmark.images}
    objects = {obj.key: obj for obj in benchmark.objects}
    sent_id = 0
    for number, (dataset, split_by) in enumerate(REFER_DATASETS.items()):
        refs = []
        used_images: dict[str, ImageEntry] = {}
        for index, ref in enumerate(entry for entry in benchmark.refs if entry.dataset == dataset):
            obj = objects[ref.object]
            image = images[obj.image]
            used_images[image.key] = image
            sentences = []
            for raw in ref.sentences:
                sent_id += 1
                tokens = _tokens(raw)
                sentences.append({"tokens": tokens, "raw": raw, "sent_id": sent_id, "sent": " ".join(tokens)})
            refs.append(
                {
                    "sent_ids": [s["sent_id"] for s in sentences],
                    "file_name": f"COCO_train2014_{image.train_id:012d}_{ann_ids[obj.key]}.jpg",
                    "ann_id": ann_ids[obj.key],
                    "ref_id": (number + 1) * 10**7 + index + 1,
                    "image_id": image.train_id,
                    "split": ref.split,
                    "sentences": sentences,
                    "category_id": CATEGORY_IDS[obj.category],  # type: ignore[index]
                }
            )
        folder = root / "ref_seg" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
        annotations = [
            _instance(ann_ids[obj.key], images[obj.image].train_id, obj, images[obj.image])
            for obj in benchmark.objects
            if obj.category is not None and obj.image in used_images
        ]
        _dump(
            folder / "instances.json",
            {
                "images": [_image_record(image.train_id, train_name(image), image) for image in used_images.values()],
                "annotations": annotations,
                "categories": categories_json(),
            },
        )


def write_gcg(benchmark: Benchmark, root: Path) -> None:
    """GranD-f style caption and mask ground truth per split."""
    images = {image.key: image for image in benchmark.images}
    objects = {obj.key: obj for obj in benchmark.objects}
    folder = root / "glamm_data/annotations/gcg_val_test"
    mask_id = 0
    for split in ("val", "test"):
        entries = [entry for entry in benchmark.gcg if entry.split == split]
        records = [
            _image_record(images[e.image].grandf_id, f"{images[e.image].grandf_id}.jpg", images[e.image])
            for e in entries
        ]
        captions, mask_annotations = [], []
        for number, entry in enumerate(entries, start=1):
            image = images[entry.image]
            captions.append(
                {
                    "id": number,
                    "image_id": image.grandf_id,
                    "caption": entry.caption,
                    "labels": [phrase for phrase, _ in entry.groundings],
                }
            )
            for _, keys in entry.groundings:
                mask_id += 1
                rle = _rle([polygon for key in keys for polygon in objects[key].polygons], image)
                box, area = _box_and_area(rle)
                mask_annotations.append(
                    {
                        "id": mask_id,
                        "image_id": image.grandf_id,
                        "category_id": 1,
                        "segmentation": rle,
                        "area": area,
                        "bbox": box,
                        "iscrowd": 0,
                    }
                )
        _dump(folder / f"{split}_gcg_coco_caption_gt.json", {"images": records, "annotations": captions})
        _dump(
            folder / f"{split}_gcg_coco_mask_gt.json",
            {"images": records, "annotations": mask_annotations, "categories": [{"id": 1, "name": "object"}]},
        )


def _question(word: str) -> str:
    article = "an" if word[0] in "aeiou" else "a"
    return f"Is there {article} {word} in the image?"


def write_pope(benchmark: Benchmark, root: Path) -> None:
    """COCO files as JSON Lines; A-OKVQA and GQA variants as pretty-printed JSON arrays."""
    images = {image.key: image for image in benchmark.images}
    for setting in POPE_SETTINGS:
        rows = []
        for entry in benchmark.pope:
            for present, absent in zip(entry.present, entry.absent[setting], strict=True):
                rows.append((images[entry.image], present, "yes"))
                rows.append((images[entry.image], absent, "no"))
        coco = [
            {"question_id": n, "image": val_name(image), "text": _question(word), "label": label}
            for n, (image, word, label) in enumerate(rows, start=1)
        ]
        _dump_lines(root / f"pope/coco/coco_pope_{setting}.json", coco)
        _dump(root / f"pope/aokvqa/aokvqa_pope_seem_{setting}.json", coco, indent=4)
        gqa = [dict(row, image=f"{image.val_id}.jpg") for row, (image, _, _) in zip(coco, rows, strict=True)]
        _dump(root / f"pope/gqa/gqa_pope_seem_{setting}.json", gqa, indent=4)


def write_chair(benchmark: Benchmark, root: Path, ann_ids: dict[str, int]) -> None:
    """COCO 2014 captions and instances (train and val ids), and LIRA's ``chair_test.jsonl`` of all val images."""
    images = {image.key: image for image in benchmark.images}
    folder = root / "chair/annotations"
    for split, image_id in (("train", lambda i: i.train_id), ("val", lambda i: i.val_id)):
        name = train_name if split == "train" else val_name
        records = [_image_record(image_id(image), name(image), image) for image in benchmark.images]
        captions = [
            {"image_id": image_id(images[key]), "id": 0, "caption": caption}
            for key, texts in benchmark.captions.items()
            for caption in texts
        ]
        for number, caption in enumerate(captions, start=1):
            caption["id"] = number
        offset = 0 if split == "train" else 10**7
        instances = [
            _instance(ann_ids[obj.key] + offset, image_id(images[obj.image]), obj, images[obj.image])
            for obj in benchmark.objects
            if obj.category is not None
        ]
        header = {"info": {"description": "attreval mini benchmark"}, "licenses": []}
        _dump(folder / f"captions_{split}2014.json", {**header, "images": records, "annotations": captions})
        _dump(
            folder / f"instances_{split}2014.json",
            {**header, "images": records, "annotations": instances, "categories": categories_json()},
        )
    _dump_lines(
        root / "chair/chair_test.jsonl",
        (
            {
                "image": f"data/{VAL_IMAGES}/{val_name(image)}",
                "question": "Please describe this image in detail.",
                "question_id": image.val_id,
                "answer": "",
            }
            for image in benchmark.images
        ),
    )


def write_attreval(benchmark: Benchmark, root: Path) -> None:
    """``refcoco_attri.jsonl``: pairs on consecutive lines; image paths relative to the data root."""
    images = {image.key: image for image in benchmark.images}
    rows = []
    for pair in benchmark.attreval:
        for question, answer in pair.questions:
            rows.append(
                {
                    "image": f"{TRAIN_IMAGES}/{train_name(images[pair.image])}",
                    "question": question,
                    "question_id": len(rows) + 1,
                    "answer": answer,
                    "attribute": pair.attribute,
                }
            )
    _dump_lines(root / "refcoco_attri/refcoco_attri.jsonl", rows)


def write_benchmark(benchmark: Benchmark, root: Path) -> None:
    """Check ``benchmark`` and write every file under ``root``."""
    check(benchmark)
    root.mkdir(parents=True, exist_ok=True)
    ann_ids = {obj.key: 10**6 + number for number, obj in enumerate(benchmark.objects, start=1)}
    write_images(benchmark, root)
    write_refer(benchmark, root, ann_ids)
    write_gcg(benchmark, root)
    write_pope(benchmark, root)
    write_chair(benchmark, root, ann_ids)
    write_attreval(benchmark, root)


__all__ = [
    "AttrPair",
    "Benchmark",
    "GcgEntry",
    "ImageEntry",
    "ObjectEntry",
    "PopeEntry",
    "RefEntry",
    "check",
    "write_benchmark",
]
