"""CHAIR inputs: COCO 2014 captions and instances, and the choice of evaluated val2014 images.

The reference scorer (OPERA ``chair.py``) reads all four files ``{captions,instances}_{train,val}2014.json``;
the images are 500 val2014 images drawn at random (OPERA: seeded shuffle of a folder listing; LIRA:
unseeded), so here they are drawn from the sorted val2014 ids with a recorded seed, or read from an
id list to reproduce a published sample (metrics.md §4.3, §4.5).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError
from tasks.loaders.common import field as checked_field
from tasks.loaders.common import memoised, read_json_object, read_values
from tasks.loaders.refer import CocoImage, parse_coco_image


@dataclass
class CocoAnnotations:
    """What CHAIR needs from the COCO files: val images, category names and captions per image."""

    images: dict[int, CocoImage] = field(default_factory=dict)
    categories: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    captions: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))


def _instances(path: Path) -> tuple[list[CocoImage], list[tuple[int, str]]]:
    data = read_json_object(path, "COCO instances file", keys=("images", "annotations", "categories"))
    names = {}
    for index, item in enumerate(data["categories"]):
        where = f"COCO instances file {path} categories[{index}]"
        names[checked_field(item, "id", int, where)] = checked_field(item, "name", str, where)
    images = [
        parse_coco_image(item, f"COCO instances file {path} images[{index}]")
        for index, item in enumerate(data["images"])
    ]
    pairs = []
    for index, item in enumerate(data["annotations"]):
        where = f"COCO instances file {path} annotations[{index}]"
        category = checked_field(item, "category_id", int, where)
        if category not in names:
            raise DataError(f"{where}: category_id {category} is not in the file's categories")
        pairs.append((checked_field(item, "image_id", int, where), names[category]))
    return images, pairs


def _captions(path: Path) -> list[tuple[int, str]]:
    data = read_json_object(path, "COCO captions file", keys=("annotations",))
    pairs = []
    for index, item in enumerate(data["annotations"]):
        where = f"COCO captions file {path} annotations[{index}]"
        pairs.append((checked_field(item, "image_id", int, where), checked_field(item, "caption", str, where)))
    return pairs


def load_coco(folder: Path, splits: tuple[str, ...]) -> CocoAnnotations:
    """Captions and instance categories of ``splits`` (train and/or val); images of val2014."""
    coco = CocoAnnotations()
    for split in splits:
        images, pairs = memoised("coco-instances", folder / f"instances_{split}2014.json", _instances)
        if split == "val":
            coco.images = {image.id: image for image in images}
        for image_id, name in pairs:
            coco.categories[image_id].add(name)
        for image_id, caption in memoised("coco-captions", folder / f"captions_{split}2014.json", _captions):
            coco.captions[image_id].append(caption)
    return coco


def read_image_ids(path: Path) -> list[int]:
    """Image ids from a list file: a JSON list of ids, JSON (Lines) objects with ``image_id`` (OPERA's
    logs) or ``question_id`` (LIRA's ``chair_test.jsonl``), or text with one id or COCO file name per line."""
    path = Path(path)
    if path.suffix in (".json", ".jsonl"):
        ids = []
        for location, row in read_values(path, "image id list"):
            value = row.get("image_id", row.get("question_id")) if isinstance(row, dict) else row
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise DataError(f"image id list {path} {location}: expected an image id, got {value!r}")
            ids.append(value)
        return ids
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"image id list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"image id list {path} cannot be read: {error}") from None
    ids = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        digits = re.findall(r"\d+", Path(line.strip()).stem)
        if not digits:
            raise DataError(f"image id list {path} line {number}: expected an image id or COCO file name, got {line!r}")
        ids.append(int(digits[-1]))
    return ids


def choose_images(
    pool: dict[int, CocoImage], count: int, seed: int, listed: list[int] | None, source: str
) -> list[int]:
    """Evaluated image ids, sorted: ``listed`` (checked against the pool) or ``count`` drawn with ``seed``."""
    if listed is not None:
        unknown = [image_id for image_id in listed if image_id not in pool]
        if unknown:
            raise DataError(f"image id list {source} names ids {unknown[:5]} that instances_val2014.json lacks")
        return sorted(set(listed))
    ids = sorted(pool)
    return sorted(random.Random(seed).sample(ids, min(count, len(ids))))


__all__ = ["CocoAnnotations", "choose_images", "load_coco", "read_image_ids"]
