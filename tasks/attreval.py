"""AttrEval: does a model infer the attributes (category, colour, position, relation) of the object it segments?

Tasks (group ``attreval`` = ``attreval_qa`` + ``attreval_seg``):

- ``attreval_qa``: the QA track built by `dataset_builders.attreval`
  (``attreval/<subset>/refcoco_attri.jsonl``): yes/no question pairs, scored by accuracy, LIRA's paired
  accuracy (``accuracy2``) and accuracy per attribute type.
- ``attreval_seg``: the segmentation track of the same build (``attreval/<subset>/refs(*).p`` and
  ``instances.json``, REFER format): attribute-only referring expressions, scored like RefCOCO (cIoU,
  gIoU) overall and per attribute type; requests ask for `[SEG]` probes (the seg-token analysis).
- ``attreval_qa_lira``: LIRA's released ``refcoco_attri/refcoco_attri.jsonl`` (data-formats.md §6),
  the same metric.

The question is the prompt as is (no suffix); QA decoding is greedy with at most 10 new tokens, as in
LIRA's ``evaluate_vqa.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from harness.errors import UserError
from harness.metrics.attreval import AttrEvalQA
from harness.metrics.base import Metric
from harness.metrics.refseg import GroupedReferringSegmentation
from harness.task import Task
from harness.types import RLE, GenerationSettings, Prediction, Sample
from tasks.layout import ATTREVAL_BUILDS, ATTREVAL_QUESTIONS, Layout
from tasks.loaders.attreval import load_attreval
from tasks.loaders.common import resolve_image
from tasks.loaders.refer import ReferringUnit
from tasks.refcoco import DEFAULT_SPLIT_BY, ReferringSegmentationTask

DEFAULT_SUBSET = "refcoco_val"
SUBSET = re.compile(r"^(refcoco\+?|refcocog)_([A-Za-z]+)$")


def parse_subset(subset: str) -> tuple[str, str]:
    """``"refcoco_val"`` -> ``("refcoco", "val")``: the dataset and split a build was made from."""
    match = SUBSET.match(subset)
    if match is None:
        raise UserError(
            f"AttrEval subset {subset!r} must look like DATASET_SPLIT (refcoco_val, refcoco+_testA, refcocog_test): "
            f"the folder attreval/DATASET_SPLIT that `python -m dataset_builders.attreval` writes"
        )
    return match.group(1), match.group(2)


class AttrEvalQATask(Task):
    """LIRA's released AttrEval questions: accuracy, paired accuracy (``accuracy2``), accuracy per attribute.

    Args:
        questions: the JSONL file (default ``refcoco_attri/refcoco_attri.jsonl``).
        images: folder that relative ``image`` paths start from; by default the data root, then its
            parent (LIRA's files hold ``data/...`` paths relative to the repository root).
    """

    family = "attreval"
    kind = "vqa"
    prompt_template = "{question}"
    generation = GenerationSettings(max_new_tokens=10, min_new_tokens=1)

    def __init__(self, name: str, questions: Path | None = None, images: Path | None = None, **options: Any) -> None:
        paths = {key: value for key, value in (("questions", questions), ("images", images)) if value}
        super().__init__(name, **paths, **options)
        self.paths = paths

    def default_questions(self, data_root: Path) -> Path:
        return data_root / ATTREVAL_QUESTIONS

    def data_files(self, data_root: Path) -> dict[str, Path]:
        return {"questions": self.paths.get("questions") or self.default_questions(data_root)}

    def samples(self, data_root: Path) -> list[Sample]:
        bases = [self.paths["images"]] if "images" in self.paths else [data_root, data_root.parent]
        samples = []
        for question in load_attreval(self.data_files(data_root)["questions"]):
            target = {"answer": question.answer}
            if question.attribute is not None:
                target["attribute"] = question.attribute
            samples.append(
                Sample(
                    sample_id=question.question_id,
                    image=resolve_image(question.image, bases),
                    target=target,
                    inputs={"question": question.question},
                )
            )
        return samples

    def reference(self, sample: Sample) -> Prediction:
        return Prediction(text=sample.target["answer"])

    def metrics(self) -> list[Metric]:
        return [AttrEvalQA()]


class BuiltAttrEvalQATask(AttrEvalQATask):
    """The QA track of a `dataset_builders.attreval` build.

    Args:
        subset: the build's folder under ``attreval/`` (default ``refcoco_val``).
        questions / images: as for `AttrEvalQATask` (``questions`` replaces the subset's file).
    """

    def __init__(
        self, name: str, subset: str = DEFAULT_SUBSET, questions: Path | None = None, images: Path | None = None
    ) -> None:
        parse_subset(subset)
        options = {"subset": subset} if subset != DEFAULT_SUBSET else {}
        super().__init__(name, questions=questions, images=images, **options)
        self.subset = subset

    def default_questions(self, data_root: Path) -> Path:
        return data_root / ATTREVAL_BUILDS / self.subset / "refcoco_attri.jsonl"


class AttrEvalSegTask(ReferringSegmentationTask):
    """The segmentation track of a `dataset_builders.attreval` build: cIoU and gIoU, overall and per attribute.

    ``Sample.target``: ``{"mask", "attribute"`` (the expression's attribute type), ``"category"``,
    ``"supercategory"``, ``"attributes"`` (every kept attribute word of the object, by type)``}``.

    Args:
        subset: the build's folder under ``attreval/`` (default ``refcoco_val``); names the source
            dataset and split.
        refs / instances: explicit files replacing the subset's; images: the COCO train2014 folder
            (default: the data root's RefCOCO layout).
        layout: where the images are found (as for the RefCOCO tasks).
        protocol: the `ReferringSegmentation` protocol.
        probes: ask adapters for `[SEG]` probes (default yes: the seg-token analysis reads them).
    """

    family = "attreval"
    want_probes = True

    def __init__(
        self,
        name: str,
        subset: str = DEFAULT_SUBSET,
        refs: Path | None = None,
        instances: Path | None = None,
        images: Path | None = None,
        layout: Layout = "auto",
        protocol: Literal["generation", "lisa"] = "generation",
        probes: bool = True,
    ) -> None:
        dataset, split = parse_subset(subset)
        super().__init__(
            name,
            dataset=dataset,  # type: ignore[arg-type]
            split=split,
            refs=refs,
            instances=instances,
            images=images,
            layout=layout,
            protocol=protocol,
            probes=probes,
        )
        self.options = {
            key: value for key, value in self.options.items() if key not in ("dataset", "split", "split_by")
        }
        if subset != DEFAULT_SUBSET:
            self.options["subset"] = subset
        self.subset = subset

    def data_files(self, data_root: Path) -> dict[str, Path]:
        folder = data_root / ATTREVAL_BUILDS / self.subset
        return {
            "refs": self.paths.get("refs") or folder / f"refs({DEFAULT_SPLIT_BY[self.dataset]}).p",
            "instances": self.paths.get("instances") or folder / "instances.json",
        }

    def target(self, unit: ReferringUnit, mask: RLE) -> dict[str, Any]:
        target = super().target(unit, mask)
        if unit.sentence.attribute is not None:
            target["attribute"] = unit.sentence.attribute
        attributes = {key: list(words) for key, words in unit.ref.attributes.items() if key != "category"}
        attributes.pop("supercategory", None)
        if attributes:
            target["attributes"] = attributes
        return target

    def metrics(self) -> list[Metric]:
        return [GroupedReferringSegmentation(protocol=self.protocol, key="attribute")]


__all__ = ["DEFAULT_SUBSET", "AttrEvalQATask", "AttrEvalSegTask", "BuiltAttrEvalQATask", "parse_subset"]
