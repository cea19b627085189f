"""GranD-f GCG ground truth: ``{split}_gcg_coco_caption_gt.json`` and ``{split}_gcg_coco_mask_gt.json``.

The caption file's ``images[]`` defines the evaluated images (ids are strings, the file stems); its
one caption annotation per image carries the caption and the grounded phrases (``labels``). The
mask file holds one annotation per phrase; an image's masks are its annotations in file order, as
GLaMM's evaluator collects them (data-formats.md §3, metrics.md §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycocotools import mask as coco_mask

from harness import masks
from harness.errors import DataError, SampleError
from harness.types import RLE
from tasks.loaders.common import field, read_json_object


@dataclass(frozen=True)
class GcgImage:
    image_id: str
    file_name: str
    size: tuple[int, int] | None
    caption: str
    labels: tuple[str, ...]
    masks: tuple[RLE, ...]


def segmentation_to_rle(value: Any, size: tuple[int, int] | None, where: str) -> RLE:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons given the image size) as compressed RLE."""
    try:
        if isinstance(value, dict) and isinstance(value.get("counts"), list):
            height, width = value.get("size", (0, 0))
            value = coco_mask.frPyObjects(value, height, width)  # uncompressed -> compressed
            value = {"size": [int(x) for x in value["size"]], "counts": value["counts"].decode("ascii")}
        elif isinstance(value, list):
            if size is None:
                raise DataError(f"{where}: polygon segmentation needs the image's height and width in 'images'")
            merged = coco_mask.merge(coco_mask.frPyObjects([list(map(float, p)) for p in value], *size))
            value = {"size": [int(x) for x in merged["size"]], "counts": merged["counts"].decode("ascii")}
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise DataError(f"{where}: not a COCO segmentation ({type(error).__name__}: {error})") from None
    try:
        return masks.validate(value, what=where)
    except SampleError as error:
        raise DataError(str(error)) from None


def _image_sizes(data: dict[str, Any], path: Path, what: str) -> dict[str, tuple[int, int] | None]:
    sizes: dict[str, tuple[int, int] | None] = {}
    for index, item in enumerate(data["images"]):
        where = f"{what} {path} images[{index}]"
        image_id = field(item, "id", (str, int), where)
        height, width = item.get("height"), item.get("width")
        sizes[str(image_id)] = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    return sizes


def load_gcg(caption_path: Path, mask_path: Path) -> list[GcgImage]:
    """The evaluated images of one split, sorted by image id (COCOeval's own image order)."""
    captions = read_json_object(caption_path, "GCG caption file", keys=("images", "annotations"))
    mask_data = read_json_object(mask_path, "GCG mask file", keys=("images", "annotations"))
    names: dict[str, str] = {}
    for index, item in enumerate(captions["images"]):
        where = f"GCG caption file {caption_path} images[{index}]"
        image_id = str(field(item, "id", (str, int), where))
        if image_id in names:
            raise DataError(f"{where}: image id {image_id!r} is listed twice")
        names[image_id] = field(item, "file_name", str, where)
    sizes = {
        **_image_sizes(mask_data, mask_path, "GCG mask file"),
        **_image_sizes(captions, caption_path, "GCG caption file"),
    }

    texts: dict[str, tuple[str, tuple[str, ...]]] = {}
    for index, item in enumerate(captions["annotations"]):
        where = f"GCG caption file {caption_path} annotations[{index}]"
        image_id = str(field(item, "image_id", (str, int), where))
        labels = field(item, "labels", list, where)
        if not all(isinstance(label, str) for label in labels):
            raise DataError(f"{where}: field 'labels' must be a list of strings")
        texts.setdefault(image_id, (field(item, "caption", str, where), tuple(labels)))  # GLaMM takes the first

    grouped: dict[str, list[RLE]] = {}
    for index, item in enumerate(mask_data["annotations"]):
        where = f"GCG mask file {mask_path} annotations[{index}]"
        image_id = str(field(item, "image_id", (str, int), where))
        segmentation = field(item, "segmentation", (dict, list), where)
        grouped.setdefault(image_id, []).append(
            segmentation_to_rle(segmentation, sizes.get(image_id), f"{where} segmentation")
        )

    images = []
    for image_id in sorted(names):
        if image_id not in texts:
            raise DataError(f"GCG caption file {caption_path} has no caption annotation for image {image_id!r}")
        caption, labels = texts[image_id]
        found = tuple(grouped.get(image_id, ()))
        size = sizes.get(image_id) or (tuple(found[0]["size"]) if found else None)
        images.append(GcgImage(image_id, names[image_id], size, caption, labels, found))  # type: ignore[arg-type]
    return images


__all__ = ["GcgImage", "load_gcg", "segmentation_to_rle"]
