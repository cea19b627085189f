"""Render the ILVC local-crop images that LIRA's training data expects pre-rendered, and the annotation files that
point at them (data-formats.md §1.6, §3.5).

LIRA trains on `ref_seg_high/<dataset>/instances.json` and `glamm_data/annotations/*_highlight_bg.json`, copies of
the RefCOCO-family and GCG annotations in which every grounded object carries `seg_img_path`, a pre-rendered crop;
no script that makes them ships (lira-model.md §7.1). This builder makes them with the crop the model sees at
inference (`processor.highlight_crop`, the inferred recipe): the image cropped to the mask's bounding box, everything
outside the mask at 30 % brightness.

Inputs (under `--data-root`, LIRA's `data/` layout) and outputs:

- `refcoco`, `refcoco+`, `refcocog`: read `ref_seg/<d>/refs(unc|umd).p` and `instances.json`; write
  `ref_seg_high/<d>/` (the refs copied, `instances.json` with `seg_img_path` on every annotation that a ref of
  `--split` names).
- `grandf`, `openpsg`: read `glamm_data/annotations/{GranDf_HA_GCG,OpenPsgGCG}_train.json`; write
  `..._train_highlight_bg.json` with `seg_img_path` on every grounding.
- `refcocog_gcg`: `RefCOCOg_GCG_train.json` → `RefCOCOg_GCG_train_highlight_bg.json` (on every ref).
- `flickr_gcg`: `flickr_mergedGT_GCG_train.json` → `flickr_mergedGT_GCG_train_highlight_bg.json` (on every
  annotation).

Crops go to `--out` (one folder per source, PNG by default) and each `seg_img_path` is that file's path as written
under `--out` (relative paths stay relative, as the original opens them from the working directory). A grounding
whose image is missing or whose mask does not decode gets no crop and no `seg_img_path`; it is counted by reason.
`manifest.json` lists every crop (source, record, image, mask bounding box, SHA-256 of the file) with the counts and
settings. Records are processed in file order and files are written without timestamps, so two runs give identical
files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.errors import DataError
from models.lira.processor import HIGHLIGHT_BRIGHTNESS, highlight_crop
from models.lira.training.dataset import decode_segmentation
from tasks.loaders.common import load_plain_pickle

REFER_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}

GCG_FILES = {
    "grandf": ("glamm_data/annotations/GranDf_HA_GCG_train.json", "glamm_data/images/grandf/train"),
    "openpsg": ("glamm_data/annotations/OpenPsgGCG_train.json", "glamm_data/images/coco2017"),
    "refcocog_gcg": ("glamm_data/annotations/RefCOCOg_GCG_train.json", "glamm_data/images/coco2014/train2014"),
    "flickr_gcg": ("glamm_data/annotations/flickr_mergedGT_GCG_train.json", "glamm_data/images/flickr30k/Flickr30K"),
}
"""Default annotation file and image folder of each GCG source, relative to the data root (LIRA's layout)."""

REFER_IMAGES = "glamm_data/images/coco2014/train2014"
SOURCES = (*REFER_SPLIT_BY, *GCG_FILES)


@dataclass(frozen=True)
class CropJob:
    """One crop to render: the grounding's image, its segmentation, and the file to write."""

    source: str
    record: str
    image: str
    segmentation: Any
    out: str
    size: tuple[int, int] | None
    """(height, width) from the annotation when known; the image must have it."""


def bounding_box(mask: np.ndarray) -> list[int] | None:
    """`[left, top, right, bottom]` (exclusive) of the non-zero pixels, or None for an empty mask."""
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        return None
    return [int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1]


def render_crop(job: CropJob, image_format: str) -> dict[str, Any]:
    """Render and write one crop; returns its manifest entry, or `{"error": reason, ...}`."""
    try:
        with Image.open(job.image) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return {"error": "missing or unreadable image", "record": job.record}
    if job.size is not None and job.size != (image.height, image.width):
        return {"error": "annotation size differs from the image", "record": job.record}
    try:
        mask = decode_segmentation(job.segmentation, image.height, image.width)
    except (ValueError, TypeError):
        return {"error": "mask does not decode", "record": job.record}
    crop = highlight_crop(image, mask)
    out = Path(job.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if image_format == "png":
        crop.save(out, format="PNG", optimize=False)
    else:
        crop.save(out, format="JPEG", quality=95, subsampling=0)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {
        "source": job.source,
        "record": job.record,
        "image": job.image,
        "crop": job.out,
        "bbox": bounding_box(mask),
        "crop_size": [crop.width, crop.height],
        "sha256": digest,
    }


# ---------------------------------------------------------------------------
# Jobs per source (the annotation copies are filled in after rendering)
# ---------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot be read as JSON ({error})") from None


@dataclass
class SourcePlan:
    """The jobs of one source and how to write its annotation copy once the crops exist."""

    source: str
    jobs: list[CropJob]
    slots: list[dict[str, Any]]
    """Per job, the annotation object that receives its `seg_img_path`."""
    data: Any
    annotation_out: Path
    refs_file: tuple[Path, Path] | None = None
    """(source, target) of the refs pickle copied beside a REFER instances file."""


def plan_refer(data_root: Path, dataset: str, out: Path, split: str, suffix: str) -> SourcePlan:
    split_by = REFER_SPLIT_BY[dataset]
    folder = data_root / "ref_seg" / dataset
    refs_path = folder / f"refs({split_by}).p"
    refs = load_plain_pickle(refs_path, "refs pickle")
    if not isinstance(refs, list):
        raise DataError(f"refs pickle {refs_path}: expected a list of refs")
    data = _read_json(folder / "instances.json")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DataError(f"{folder / 'instances.json'}: expected an object with 'annotations'")
    images = {image["id"]: image for image in data.get("images", []) if isinstance(image, dict) and "id" in image}
    wanted = sorted({ref["ann_id"] for ref in refs if isinstance(ref, dict) and ref.get("split") == split})
    annotations = {ann["id"]: ann for ann in data["annotations"] if isinstance(ann, dict) and "id" in ann}
    jobs, slots = [], []
    for ann_id in wanted:
        annotation = annotations.get(ann_id)
        image = images.get(annotation["image_id"]) if annotation else None
        if annotation is None or image is None:
            continue
        target = out / dataset / f"ann{ann_id}.{suffix}"
        jobs.append(
            CropJob(
                source=dataset,
                record=f"{folder / 'instances.json'} annotation {ann_id}",
                image=str(data_root / REFER_IMAGES / image["file_name"]),
                segmentation=annotation["segmentation"],
                out=str(target),
                size=(int(image["height"]), int(image["width"])),
            )
        )
        slots.append(annotation)
    target_folder = data_root / "ref_seg_high" / dataset
    return SourcePlan(
        dataset, jobs, slots, data, target_folder / "instances.json", (refs_path, target_folder / refs_path.name)
    )


def _gcg_groundings(source: str, data: Any, path: Path) -> Iterator[tuple[str, dict[str, Any], Any, str]]:
    """(record label, object to annotate, segmentation, image file name) of each grounding, in file order."""
    if source in ("grandf", "openpsg"):
        for index, record in enumerate(data):
            for phrase, grounding in (record.get("groundings") or {}).items():
                if isinstance(grounding, dict) and "rle_masks" in grounding:
                    yield f"{path} record {index} {phrase!r}", grounding, grounding["rle_masks"], record["file_name"]
    elif source == "refcocog_gcg":
        for index, record in enumerate(data):
            for body in record.values():
                for number, ref in enumerate(body.get("refs") or []):
                    if isinstance(ref, dict) and "segmentation" in ref:
                        yield f"{path} record {index} refs[{number}]", ref, ref["segmentation"], body["img_file_name"]
    else:  # flickr_gcg, COCO format
        files = {image["id"]: image["file_name"] for image in data.get("images", [])}
        for index, annotation in enumerate(data.get("annotations", [])):
            if isinstance(annotation, dict) and "sam_mask" in annotation and annotation.get("image_id") in files:
                yield f"{path} annotations[{index}]", annotation, annotation["sam_mask"], files[annotation["image_id"]]


def plan_gcg(data_root: Path, source: str, out: Path, suffix: str) -> SourcePlan:
    annotations, images = GCG_FILES[source]
    path = data_root / annotations
    data = _read_json(path)
    if (source == "flickr_gcg") != isinstance(data, dict):
        raise DataError(f"{path}: unexpected top-level structure for {source}")
    jobs, slots = [], []
    for number, (record, slot, segmentation, file_name) in enumerate(_gcg_groundings(source, data, path)):
        target = out / source / f"{number:08d}.{suffix}"
        jobs.append(CropJob(source, record, str(data_root / images / file_name), segmentation, str(target), None))
        slots.append(slot)
    annotation_out = path.with_name(path.stem + "_highlight_bg.json")
    return SourcePlan(source, jobs, slots, data, annotation_out)


# ---------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------


def build_crops(
    data_root: Path,
    out: Path,
    sources: tuple[str, ...] = SOURCES,
    *,
    split: str = "train",
    image_format: str = "png",
    workers: int = 0,
) -> dict[str, Any]:
    """Render the crops of `sources`, write the annotation copies and `out/manifest.json`; returns the manifest."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise DataError(f"unknown crop source(s) {unknown}; expected some of {list(SOURCES)}")
    if image_format not in ("png", "jpg"):
        raise DataError(f"image format must be png or jpg, got {image_format!r}")
    plans = [
        plan_refer(data_root, source, out, split, image_format)
        if source in REFER_SPLIT_BY
        else plan_gcg(data_root, source, out, image_format)
        for source in sources
    ]
    entries: list[dict[str, Any]] = []
    counts: dict[str, Counter[str]] = {}
    for plan in plans:
        if workers > 0:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(render_crop, plan.jobs, [image_format] * len(plan.jobs), chunksize=16))
        else:
            results = [render_crop(job, image_format) for job in plan.jobs]
        count: Counter[str] = Counter()
        for job, slot, result in zip(plan.jobs, plan.slots, results, strict=True):
            if "error" in result:
                count[result["error"]] += 1
                slot.pop("seg_img_path", None)
                continue
            count["rendered"] += 1
            slot["seg_img_path"] = job.out
            entries.append(result)
        counts[plan.source] = count
        plan.annotation_out.parent.mkdir(parents=True, exist_ok=True)
        plan.annotation_out.write_text(json.dumps(plan.data, ensure_ascii=False), encoding="utf-8")
        if plan.refs_file is not None:
            shutil.copyfile(*plan.refs_file)
    manifest = {
        "recipe": {
            "crop": "bounding box of the mask (PIL getbbox); background at ImageEnhance.Brightness "
            f"{HIGHLIGHT_BRIGHTNESS}; mask pixels at full brightness (models.lira.processor.highlight_crop)",
            "format": image_format,
            "split": split,
        },
        "counts": {source: dict(count) for source, count in counts.items()},
        "annotations": {plan.source: str(plan.annotation_out) for plan in plans},
        "crops": entries,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


__all__ = ["GCG_FILES", "SOURCES", "CropJob", "bounding_box", "build_crops", "render_crop"]
