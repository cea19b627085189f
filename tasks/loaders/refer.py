"""The REFER format of RefCOCO / RefCOCO+ / RefCOCOg: ``refs(<splitBy>).p`` plus ``instances.json``.

Refs are read through a restricted unpickler, every field is checked, and split selection follows
REFER's ``getRefIds`` (``testA`` = refs whose split contains "A", ``test`` = contains "test",
``train`` / ``val`` exact), with split names validated up front instead of REFER's silent
"return all refs". Units are sorted by image id, ref id and sentence order (REFER's own per-image
order is set-iteration order).

Unknown keys are ignored, except two optional fields that AttrEval's segmentation track writes
(`dataset_builders.attreval`): a sentence's ``attribute`` (the attribute type its expression is built
on) and a ref's ``attributes`` (attribute type -> list of words, e.g. ``{"color": ["red"]}``).
``instances.json`` categories (``id``, ``name``, ``supercategory``) and each annotation's
``category_id`` and ``bbox`` are read when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from harness.errors import DataError, UserError
from tasks.loaders.common import field, list_field, load_plain_pickle, memoised, read_json_object

SPLITS_BY_PARTITION: dict[str, tuple[str, ...]] = {
    "unc": ("train", "val", "testA", "testB"),
    "umd": ("train", "val", "test"),
    "google": ("train", "val"),
}
"""Split names each ``splitBy`` release defines (data-formats.md §1.1)."""

Segmentation = list[Any] | dict[str, Any]


@dataclass(frozen=True)
class Sentence:
    sent_id: int
    sent: str
    raw: str
    attribute: str | None = None


@dataclass(frozen=True)
class Ref:
    ref_id: int
    ann_id: int
    image_id: int
    split: str
    sentences: tuple[Sentence, ...]
    attributes: dict[str, tuple[str, ...]] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    height: int
    width: int


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str


@dataclass(frozen=True)
class Annotation:
    """What an annotation says besides its segmentation (``category_id`` and ``bbox`` may be absent)."""

    id: int
    image_id: int
    category_id: int | None
    bbox: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class Instances:
    """``instances.json`` indexed by id: images, each annotation's segmentation and facts, categories.

    ``seg_img_paths`` holds the ``seg_img_path`` of the annotations that have one (LIRA's ILVC training copies in
    ``ref_seg_high/``: the pre-rendered local crop of the object, data-formats.md §1.6).
    """

    images: dict[int, CocoImage]
    segmentations: dict[int, Segmentation]
    annotations: dict[int, Annotation] = dataclass_field(default_factory=dict)
    categories: dict[int, Category] = dataclass_field(default_factory=dict)
    seg_img_paths: dict[int, str] = dataclass_field(default_factory=dict)

    def category(self, ann_id: int) -> Category | None:
        """The category of annotation ``ann_id``, when the file names it."""
        annotation = self.annotations.get(ann_id)
        if annotation is None or annotation.category_id is None:
            return None
        return self.categories.get(annotation.category_id)


@dataclass(frozen=True)
class ReferringUnit:
    """One evaluation unit: a sentence, its ref, the referred annotation's image and segmentation."""

    ref: Ref
    sentence: Sentence
    image: CocoImage
    segmentation: Segmentation
    category: Category | None = None


def check_split(split: str, split_by: str) -> None:
    """Refuse a split that the ``splitBy`` release does not define."""
    known = SPLITS_BY_PARTITION.get(split_by)
    if known is None:
        raise UserError(f"unknown REFER splitBy {split_by!r}; expected one of {', '.join(SPLITS_BY_PARTITION)}")
    if split not in known:
        raise UserError(f"unknown split {split!r} for splitBy {split_by!r}; expected one of {', '.join(known)}")


def _sentence(value: Any, where: str) -> Sentence:
    sent = field(value, "sent", str, where)
    raw = value.get("raw", sent)
    if not isinstance(raw, str):
        raise DataError(f"{where}: field 'raw' must be a string, got {type(raw).__name__}")
    attribute = value.get("attribute")
    if attribute is not None and not isinstance(attribute, str):
        raise DataError(f"{where}: field 'attribute' must be a string, got {type(attribute).__name__}")
    return Sentence(sent_id=field(value, "sent_id", int, where), sent=sent, raw=raw, attribute=attribute)


def _attributes(item: dict[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    """A ref's optional ``attributes``: attribute type -> list of words."""
    value = item.get("attributes", {})
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(words, list) and all(isinstance(word, str) for word in words)
        for key, words in value.items()
    ):
        raise DataError(f"{where}: field 'attributes' must map attribute types to lists of strings")
    return {key: tuple(words) for key, words in value.items()}


def _parse_refs(path: Path) -> list[Ref]:
    data = load_plain_pickle(path, "refs pickle")
    if not isinstance(data, list):
        raise DataError(f"refs pickle {path}: expected a list of ref dicts, got {type(data).__name__}")
    refs = []
    for index, item in enumerate(data):
        where = f"refs pickle {path} ref #{index}"
        ref_id = field(item, "ref_id", int, where)
        where = f"refs pickle {path} ref #{index} (ref_id {ref_id})"
        sentences = tuple(
            _sentence(sentence, f"{where} sentences[{number}]")
            for number, sentence in enumerate(list_field(item, "sentences", where))
        )
        refs.append(
            Ref(
                ref_id=ref_id,
                ann_id=field(item, "ann_id", int, where),
                image_id=field(item, "image_id", int, where),
                split=field(item, "split", str, where),
                sentences=sentences,
                attributes=_attributes(item, where),
            )
        )
    return refs


def _check_segmentation(value: Any, where: str) -> Segmentation:
    """Polygons (flat coordinate lists), a list of RLE dicts, one RLE dict, or empty."""
    if isinstance(value, dict):
        size = value.get("size")
        if not (isinstance(size, list) and len(size) == 2 and "counts" in value):
            raise DataError(f"{where}: an RLE segmentation needs 'size' [height, width] and 'counts'")
        return value
    if not isinstance(value, list):
        raise DataError(f"{where}: 'segmentation' must be a list of polygons or an RLE object")
    for part in value:
        if isinstance(part, dict):
            _check_segmentation(part, where)
        elif not (
            isinstance(part, list)
            and len(part) >= 4
            and len(part) % 2 == 0
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in part)
        ):
            raise DataError(f"{where}: each polygon must be a flat list of (x, y) number pairs")
    return value


def parse_coco_image(item: Any, where: str) -> CocoImage:
    """One ``images[]`` entry of a COCO-style file."""
    return CocoImage(
        id=field(item, "id", int, where),
        file_name=field(item, "file_name", str, where),
        height=field(item, "height", int, where),
        width=field(item, "width", int, where),
    )


def _optional(item: dict[str, Any], name: str, kinds: type | tuple[type, ...], where: str) -> Any:
    return field(item, name, kinds, where) if item.get(name) is not None else None


def _bbox(item: dict[str, Any], where: str) -> tuple[float, float, float, float] | None:
    value = item.get("bbox")
    if value is None:
        return None
    if not (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    ):
        raise DataError(f"{where}: field 'bbox' must be [x, y, width, height]")
    return (float(value[0]), float(value[1]), float(value[2]), float(value[3]))


def _parse_instances(path: Path) -> Instances:
    data = read_json_object(path, "instances file", keys=("images", "annotations"))
    images = {}
    for index, item in enumerate(data["images"]):
        image = parse_coco_image(item, f"instances file {path} images[{index}]")
        images[image.id] = image
    segmentations, annotations, seg_img_paths = {}, {}, {}
    for index, item in enumerate(data["annotations"]):
        where = f"instances file {path} annotations[{index}]"
        ann_id = field(item, "id", int, where)
        where = f"instances file {path} annotations[{index}] (id {ann_id})"
        image_id = field(item, "image_id", int, where)
        segmentations[ann_id] = _check_segmentation(field(item, "segmentation", (list, dict), where), where)
        if "seg_img_path" in item:
            seg_img_paths[ann_id] = field(item, "seg_img_path", str, where)
        annotations[ann_id] = Annotation(
            ann_id, image_id, _optional(item, "category_id", int, where), _bbox(item, where)
        )
    categories = {}
    for index, item in enumerate(data.get("categories") or []):
        where = f"instances file {path} categories[{index}]"
        category = Category(
            id=field(item, "id", int, where),
            name=field(item, "name", str, where),
            supercategory=_optional(item, "supercategory", str, where) or "",
        )
        categories[category.id] = category
    return Instances(
        images=images,
        segmentations=segmentations,
        annotations=annotations,
        categories=categories,
        seg_img_paths=seg_img_paths,
    )


def load_refs(path: Path) -> list[Ref]:
    """All refs of a ``refs(*).p`` file, checked; parsed once per file version."""
    return memoised("refs", path, _parse_refs)


def load_instances(path: Path) -> Instances:
    """The images and segmentations of an ``instances.json``, checked; parsed once per file version."""
    return memoised("instances", path, _parse_instances)


def in_split(ref_split: str, split: str) -> bool:
    """REFER ``getRefIds`` membership: ``testA`` contains "A", ``test`` contains "test", others exact."""
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split
    if split in ("testAB", "testBC", "testAC"):
        return ref_split == split
    if split == "test":
        return "test" in ref_split
    return ref_split == split


def referring_units(refs_path: Path, instances_path: Path, split: str) -> list[ReferringUnit]:
    """Every sentence of every ref in ``split``, sorted by (image id, ref id, sentence order)."""
    refs = [ref for ref in load_refs(refs_path) if in_split(ref.split, split)]
    if not refs:
        present = sorted({ref.split for ref in load_refs(refs_path)})
        raise DataError(f"refs pickle {refs_path} has no ref in split {split!r} (splits present: {present})")
    instances = load_instances(instances_path)
    units = []
    for ref in sorted(refs, key=lambda r: (r.image_id, r.ref_id)):
        image = instances.images.get(ref.image_id)
        if image is None:
            raise DataError(
                f"refs pickle {refs_path} ref {ref.ref_id} refers to image {ref.image_id}, "
                f"which {instances_path} does not list"
            )
        segmentation = instances.segmentations.get(ref.ann_id)
        if segmentation is None:
            raise DataError(
                f"refs pickle {refs_path} ref {ref.ref_id} refers to annotation {ref.ann_id}, "
                f"which {instances_path} does not list"
            )
        category = instances.category(ref.ann_id)
        units.extend(ReferringUnit(ref, sentence, image, segmentation, category) for sentence in ref.sentences)
    return units


__all__ = [
    "SPLITS_BY_PARTITION",
    "Annotation",
    "Category",
    "CocoImage",
    "Instances",
    "Ref",
    "ReferringUnit",
    "Sentence",
    "check_split",
    "in_split",
    "load_instances",
    "load_refs",
    "parse_coco_image",
    "referring_units",
]
