"""Where each task's files live under a data root, in the layouts of the LIRA, LISA and GLaMM repositories.

The default layout is LIRA's ``data/`` folder (data-formats.md §2.1). RefCOCO and GCG files can also
sit where LISA (``--dataset_dir``, §2.2) or GLaMM (``docs/datasets.md``, §2.3) put them: with
``layout=auto`` (the default) a task takes the first layout whose annotation folder exists. Every
path can also be given directly through a task option (README, "Data layout").
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.errors import UserError

Layout = Literal["auto", "lira", "lisa", "glamm"]

REFER_FOLDERS: dict[str, tuple[str, str]] = {
    "lira": ("ref_seg/{dataset}", "glamm_data/images/coco2014/train2014"),
    "lisa": ("refer_seg/{dataset}", "refer_seg/images/mscoco/images/train2014"),
    "glamm": ("Refer_Segm/{dataset}", "coco_2014/train2014"),
}
"""Layout -> (folder of ``refs(*).p`` and ``instances.json``, COCO train2014 image folder)."""

GCG_FOLDERS: dict[str, tuple[str, str]] = {
    "lira": ("glamm_data/annotations/gcg_val_test", "glamm_data/images/grandf/val_test"),
    "glamm": ("GranDf/annotations/val_test", "GranDf_HA_images/val_test"),
}
"""Layout -> (folder of ``{split}_gcg_coco_{caption,mask}_gt.json``, GranD-f val/test image folder)."""

POPE_FILES: dict[str, tuple[str, str]] = {
    "coco": ("pope/coco/coco_pope_{setting}.json", "coco/val2014"),
    "aokvqa": ("pope/aokvqa/aokvqa_pope_seem_{setting}.json", "coco/val2014"),
    "gqa": ("pope/gqa/gqa_pope_seem_{setting}.json", "gqa/images"),
}
"""POPE source -> (question/label file, image folder)."""

CHAIR_ANNOTATIONS = "chair/annotations"
"""Folder of ``{captions,instances}_{train,val}2014.json``."""

CHAIR_IMAGES = "coco/val2014"

ATTREVAL_QUESTIONS = "refcoco_attri/refcoco_attri.jsonl"
"""LIRA's released AttrEval questions (``attreval_qa_lira``)."""

ATTREVAL_BUILDS = "attreval"
"""Folder of `dataset_builders.attreval` builds, one ``<dataset>_<split>`` subset each (``attreval_qa``, ``_seg``)."""


def pick_layout(
    data_root: Path, layout: Layout, folders: dict[str, tuple[str, str]], **names: str
) -> tuple[Path, Path]:
    """(annotation folder, image folder) of ``layout``; ``auto`` takes the first whose annotations exist."""
    if layout != "auto" and layout not in folders:
        raise UserError(f"layout {layout!r} is not available here; expected auto or one of {', '.join(folders)}")
    chosen = layout
    if layout == "auto":
        chosen = next(
            (name for name, (annotations, _) in folders.items() if (data_root / annotations.format(**names)).is_dir()),
            next(iter(folders)),
        )
    annotations, images = folders[chosen]
    return data_root / annotations.format(**names), data_root / images


__all__ = [
    "ATTREVAL_BUILDS",
    "ATTREVAL_QUESTIONS",
    "CHAIR_ANNOTATIONS",
    "CHAIR_IMAGES",
    "GCG_FOLDERS",
    "POPE_FILES",
    "REFER_FOLDERS",
    "Layout",
    "pick_layout",
]
