"""RefCOCO / RefCOCO+ / RefCOCOg referring segmentation: one sample per sentence, scored by cIoU / gIoU.

Data: ``refs(unc).p`` (``refs(umd).p`` for RefCOCOg) and ``instances.json`` in REFER format, images
from COCO train2014 (data-formats.md §1). The target mask is LISA/LIRA's: pixels covered by exactly
one polygon of the referred annotation (metrics.md §1.1). The target also names the referred object's
``category`` and ``supercategory`` when ``instances.json`` lists categories (the seg-token analysis,
`reports.analysis`, scores the category word of `[SEG]` probes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from harness.errors import DataError
from harness.metrics.base import Metric
from harness.metrics.refseg import ReferringSegmentation, refer_target_mask
from harness.task import Task
from harness.types import RLE, GenerationSettings, Prediction, Sample
from tasks.layout import REFER_FOLDERS, Layout, pick_layout
from tasks.loaders.refer import ReferringUnit, check_split, referring_units

Dataset = Literal["refcoco", "refcoco+", "refcocog"]
DEFAULT_SPLIT_BY: dict[str, str] = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


class ReferringSegmentationTask(Task):
    """One split of a REFER dataset.

    Args:
        dataset: ``refcoco``, ``refcoco+`` or ``refcocog`` (fixed per registered task).
        split: ``val``, ``testA``, ``testB`` (unc) or ``val``, ``test`` (umd); fixed per registered task.
        split_by: the partition (default ``unc``, ``umd`` for RefCOCOg).
        refs / instances / images: explicit paths replacing the layout's.
        layout: ``auto`` (default), ``lira``, ``lisa`` or ``glamm`` folder conventions.
        protocol: the `ReferringSegmentation` protocol (``generation`` = LIRA/OMG-LLaVA, ``lisa``).
        probes: ask adapters for `[SEG]` probes (logit-lens word logits) for the seg-token analysis.
    """

    family = "refcoco"
    kind = "referring_segmentation"
    requires = frozenset({"masks"})
    prompt_template = "Please segment {sentence}."
    generation = GenerationSettings(max_new_tokens=100)

    def __init__(
        self,
        name: str,
        dataset: Dataset,
        split: str,
        split_by: str | None = None,
        refs: Path | None = None,
        instances: Path | None = None,
        images: Path | None = None,
        layout: Layout = "auto",
        protocol: Literal["generation", "lisa"] = "generation",
        probes: bool = False,
    ) -> None:
        split_by = split_by or DEFAULT_SPLIT_BY[dataset]
        check_split(split, split_by)
        paths = {key: value for key, value in (("refs", refs), ("instances", instances), ("images", images)) if value}
        super().__init__(
            name, dataset=dataset, split=split, split_by=split_by, layout=layout, protocol=protocol, **paths
        )
        self.dataset, self.split, self.split_by, self.layout, self.protocol = dataset, split, split_by, layout, protocol
        self.paths = paths
        self.want_probes = probes  # recorded in the task config and fingerprint as want_probes

    def _folders(self, data_root: Path) -> tuple[Path, Path]:
        return pick_layout(data_root, self.layout, REFER_FOLDERS, dataset=self.dataset)

    def data_files(self, data_root: Path) -> dict[str, Path]:
        folder = self._folders(data_root)[0]
        return {
            "refs": self.paths.get("refs") or folder / f"refs({self.split_by}).p",
            "instances": self.paths.get("instances") or folder / "instances.json",
        }

    def samples(self, data_root: Path) -> list[Sample]:
        files = self.data_files(data_root)
        images = self.paths.get("images") or self._folders(data_root)[1]
        masks: dict[int, RLE] = {}
        samples = []
        for unit in referring_units(files["refs"], files["instances"], self.split):
            image = unit.image
            if unit.ref.ann_id not in masks:  # a ref's sentences share one annotation
                try:
                    masks[unit.ref.ann_id] = refer_target_mask(unit.segmentation, image.height, image.width)
                except ValueError as error:
                    raise DataError(f"{files['instances']} annotation {unit.ref.ann_id}: {error}") from None
            samples.append(
                Sample(
                    sample_id=f"{unit.ref.ref_id}:{unit.sentence.sent_id}",
                    image=str(images / image.file_name),
                    target=self.target(unit, masks[unit.ref.ann_id]),
                    # LIRA lower-cases the normalised `sent`; `sent` and `raw` serve other prompt styles.
                    inputs={
                        "sentence": unit.sentence.sent.lower(),
                        "sent": unit.sentence.sent,
                        "raw": unit.sentence.raw,
                    },
                    image_size=(image.height, image.width),
                )
            )
        return samples

    def target(self, unit: ReferringUnit, mask: RLE) -> dict[str, Any]:
        """The ground truth of one sentence: its mask and, when known, the referred object's category."""
        target: dict[str, Any] = {"mask": mask}
        if unit.category is not None:
            target["category"] = unit.category.name
            if unit.category.supercategory:
                target["supercategory"] = unit.category.supercategory
        return target

    def reference(self, sample: Sample) -> Prediction:
        return Prediction(text="[SEG]", masks=(sample.target["mask"],))

    def metrics(self) -> list[Metric]:
        return [ReferringSegmentation(protocol=self.protocol)]


__all__ = ["ReferringSegmentationTask"]
