"""The bundled mini benchmark: real photographs shipped inside scikit-image and matplotlib, annotated by hand.

``python -m dataset_builders.mini [--output data/mini]`` writes every task's files in LIRA's layout
(`dataset_builders.writer`). The annotations are the JSON files in ``annotations/``: polygons,
referring expressions, grounded captions, POPE questions, COCO-style captions and AttrEval pairs in
LIRA's released format. AttrEval proper is then built from the written RefCOCO val files by
`dataset_builders.attreval` (seed 0) into ``attreval/refcoco_val/``. A ``BUILD.json`` stamp records
which annotations and builder versions made the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dataset_builders.attreval import build as build_attreval
from dataset_builders.attreval import default_output
from dataset_builders.writer import (
    AttrPair,
    Benchmark,
    GcgEntry,
    ImageEntry,
    ObjectEntry,
    PopeEntry,
    RefEntry,
    write_benchmark,
)

ANNOTATIONS = Path(__file__).parent / "annotations"
BUILDER_VERSION = 2
STAMP = "BUILD.json"
ATTREVAL_SUBSET = ("refcoco", "val")
"""The RefCOCO files AttrEval is built from (into ``attreval/refcoco_val``)."""


def _read(name: str) -> Any:
    return json.loads((ANNOTATIONS / f"{name}.json").read_text(encoding="utf-8"))


def load_photo(source: str, scale: float = 1.0) -> np.ndarray:
    """``skimage:NAME`` or ``matplotlib:FILE`` as an (H, W, 3) uint8 RGB array."""
    package, _, name = source.partition(":")
    if package == "skimage":
        import skimage.data

        pixels = getattr(skimage.data, name)()
        if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
            pixels = pixels[0]
        image = Image.fromarray(np.where(pixels, 255, 0).astype(np.uint8) if pixels.dtype == bool else pixels)
    elif package == "matplotlib":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(name) as stream:
            image = Image.open(stream)
            image.load()
    else:
        raise ValueError(f"unknown image source {source!r}")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    image = image.convert("RGB")
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    return np.asarray(image)


def load_benchmark() -> Benchmark:
    """The mini benchmark described by the committed annotation files."""
    images = []
    for item in _read("images")["images"]:
        render = partial(load_photo, item["source"], item.get("scale", 1.0))
        height, width = render().shape[:2]
        images.append(
            ImageEntry(item["key"], height, width, render, item["train_id"], item["val_id"], item["grandf_id"])
        )
    objects = [
        ObjectEntry(key, key.partition("/")[0], value["category"], value["polygons"])
        for key, value in _read("objects")["objects"].items()
    ]
    refs = [
        RefEntry(dataset, ref["object"], ref["split"], ref["sentences"])
        for dataset, entries in _read("refs").items()
        if not dataset.startswith("_")
        for ref in entries
    ]
    gcg = [
        GcgEntry(split, entry["image"], entry["caption"], [(g["phrase"], g["objects"]) for g in entry["groundings"]])
        for split, entries in _read("gcg").items()
        if not split.startswith("_")
        for entry in entries
    ]
    pope = [
        PopeEntry(key, value["present"], {s: value[s] for s in ("random", "popular", "adversarial")})
        for key, value in _read("pope")["images"].items()
    ]
    attreval = [
        AttrPair(pair["image"], pair["attribute"], [tuple(q) for q in pair["questions"]])  # type: ignore[misc]
        for pair in _read("attreval")["pairs"]
    ]
    return Benchmark(images, objects, refs, gcg, pope, _read("captions")["captions"], attreval)


def stamp() -> dict[str, Any]:
    """What identifies a build: builder version and the sha256 of every annotation file and the writer."""
    digest = hashlib.sha256()
    builders = Path(__file__).parent.parent
    sources = [
        *sorted(ANNOTATIONS.glob("*.json")),
        builders / "writer.py",
        *sorted((builders / "attreval").glob("*.py")),
    ]
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return {"builder": "dataset_builders.mini", "version": BUILDER_VERSION, "sources_sha256": digest.hexdigest()}


def is_current(root: Path) -> bool | None:
    """True if ``root`` was built from the current annotations, False if from others, None if not by this builder."""
    try:
        found = json.loads((Path(root) / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("builder") != "dataset_builders.mini":
        return None
    return found == stamp()


def build(root: Path) -> Path:
    """Write the mini benchmark into ``root`` (built beside it, then moved into place).

    An existing ``root`` is replaced only when this builder made it; any other folder is refused.
    """
    root = Path(root)
    if root.exists() and is_current(root) is None:
        raise FileExistsError(f"{root} exists and was not made by this builder; choose another --output")
    staging = root.with_name(f".{root.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    write_benchmark(load_benchmark(), staging)
    dataset, split = ATTREVAL_SUBSET
    build_attreval(staging, default_output(staging, dataset, split), dataset=dataset, splits=(split,), seed=0)
    (staging / STAMP).write_text(json.dumps(stamp(), indent=2) + "\n", encoding="utf-8")
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    return root


__all__ = ["ANNOTATIONS", "build", "is_current", "load_benchmark", "load_photo", "stamp"]
