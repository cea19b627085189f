"""Grounded Conversation Generation on GranD-f val/test (GLaMM protocol): AP50, mIoU, METEOR, CIDEr, recall.

Data: ``{split}_gcg_coco_caption_gt.json`` and ``{split}_gcg_coco_mask_gt.json`` (data-formats.md §3),
images ``sa_*.jpg``. One sample per image; ``sample_id`` is the image id (the file stem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.errors import UserError
from harness.metrics.base import Metric
from harness.metrics.captions import SCORERS, CaptionScores
from harness.metrics.gcg import GcgMasks, GcgRecall
from harness.task import Task
from harness.types import GenerationSettings, Prediction, Sample
from tasks.layout import GCG_FOLDERS, Layout, pick_layout
from tasks.loaders.gcg import load_gcg

GLAMM_PROMPT = (
    "Could you please give me a detailed description of the image? "
    "Please respond with interleaved segmentation masks for the corresponding parts of the answer."
)
"""GLaMM ``eval/gcg/infer.py``'s question; its ``The <image> provides an overview of the picture.``
prefix only places the image and belongs to the model's chat template."""

LIRA_PROMPTS = (
    "Can you provide a thorough description of the this image? "
    "Please output with interleaved segmentation masks for the corresponding phrases.",
    GLAMM_PROMPT,
    "Please describe in detail the contents of the image. "
    "Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
    "Could you give a comprehensive explanation of what can be found within this picture? "
    "Please output with interleaved segmentation masks for the corresponding phrases.",
    "Could you give me an elaborate explanation of this picture? "
    "Please respond with interleaved segmentation masks for the corresponding phrases.",
    "Could you provide me with a detailed analysis of this photo? "
    "Please output with interleaved segmentation masks for the corresponding parts of the answer.",
)
"""LIRA ``gcg_lira.py``: tried in order until an answer has a mask (lira-model.md §13), typo included."""


def check_caption_scorers(names: tuple[str, ...]) -> None:
    """Refuse caption scorer names that `CaptionScores` does not know."""
    unknown = [name for name in names if name not in SCORERS]
    if unknown:
        raise UserError(f"unknown caption scorer(s) {', '.join(unknown)}; expected some of {', '.join(SCORERS)}")


class GcgTask(Task):
    """One GranD-f split.

    Args:
        split: ``val`` or ``test`` (fixed per registered task).
        captions / masks / images: explicit paths replacing the layout's.
        layout: ``auto`` (default), ``lira`` or ``glamm`` folder conventions.
        prompts: ``glamm`` (one question, 512 new tokens) or ``lira`` (six questions as retries, 100 tokens).
        caption_scorers: caption metrics to report (GCG papers report METEOR and CIDEr).
        recall_encoder: a local text encoder folder for GLaMM's phrase recall (bert-base-uncased in
            the reference); recall is left out when not given, as in LIRA.
        recall_protocol: ``glamm`` (its early-stop matching) or ``full`` (maximum matching).
    """

    family = "gcg"
    kind = "grounded_caption"
    requires = frozenset({"masks"})

    def __init__(
        self,
        name: str,
        split: Literal["val", "test"],
        captions: Path | None = None,
        masks: Path | None = None,
        images: Path | None = None,
        layout: Layout = "auto",
        prompts: Literal["glamm", "lira"] = "glamm",
        caption_scorers: tuple[str, ...] = ("METEOR", "CIDEr"),
        recall_encoder: str | None = None,
        recall_protocol: Literal["glamm", "full"] = "glamm",
    ) -> None:
        check_caption_scorers(caption_scorers)
        paths = {key: value for key, value in (("captions", captions), ("masks", masks), ("images", images)) if value}
        extra = {"recall_encoder": recall_encoder, "recall_protocol": recall_protocol} if recall_encoder else {}
        super().__init__(
            name, split=split, layout=layout, prompts=prompts, caption_scorers=caption_scorers, **paths, **extra
        )
        self.split, self.layout, self.paths = split, layout, paths
        self.caption_scorers, self.recall_encoder = tuple(caption_scorers), recall_encoder
        self.recall_protocol = recall_protocol
        if prompts == "lira":
            self.prompt_template, self.retry_prompts = LIRA_PROMPTS[0], LIRA_PROMPTS[1:]
            self.generation = GenerationSettings(max_new_tokens=100)
        else:
            self.prompt_template, self.generation = GLAMM_PROMPT, GenerationSettings(max_new_tokens=512)

    def _folders(self, data_root: Path) -> tuple[Path, Path]:
        return pick_layout(data_root, self.layout, GCG_FOLDERS)

    def data_files(self, data_root: Path) -> dict[str, Path]:
        folder = self._folders(data_root)[0]
        return {
            "captions": self.paths.get("captions") or folder / f"{self.split}_gcg_coco_caption_gt.json",
            "masks": self.paths.get("masks") or folder / f"{self.split}_gcg_coco_mask_gt.json",
        }

    def samples(self, data_root: Path) -> list[Sample]:
        files = self.data_files(data_root)
        images = self.paths.get("images") or self._folders(data_root)[1]
        return [
            Sample(
                sample_id=item.image_id,
                image=str(images / item.file_name),
                target={
                    "caption": item.caption,
                    "labels": list(item.labels),
                    "masks": list(item.masks),
                    "captions": [item.caption],
                },
                image_size=item.size,
            )
            for item in load_gcg(files["captions"], files["masks"])
        ]

    def reference(self, sample: Sample) -> Prediction:
        target = sample.target
        return Prediction(text=target["caption"], masks=tuple(target["masks"]), phrases=tuple(target["labels"]))

    def metrics(self) -> list[Metric]:
        metrics: list[Metric] = [GcgMasks()]
        if self.caption_scorers:
            metrics.append(CaptionScores(scorers=self.caption_scorers))
        if self.recall_encoder:
            metrics.append(GcgRecall(protocol=self.recall_protocol, text_encoder=self.recall_encoder))
        return metrics


__all__ = ["GLAMM_PROMPT", "LIRA_PROMPTS", "GcgTask"]
