"""AttrEval question answering: attribute questions about referred objects, scored in consecutive pairs.

Data: ``refcoco_attri/refcoco_attri.jsonl`` (data-formats.md §6). The question is the prompt as is
(no suffix), decoding is greedy with at most 10 new tokens, as in LIRA's ``evaluate_vqa.py``.
"""

from __future__ import annotations

from pathlib import Path

from harness.metrics.attreval import AttrEvalQA
from harness.metrics.base import Metric
from harness.task import Task
from harness.types import GenerationSettings, Prediction, Sample
from tasks.layout import ATTREVAL_QUESTIONS
from tasks.loaders.attreval import load_attreval
from tasks.loaders.common import resolve_image


class AttrEvalQATask(Task):
    """Accuracy and paired accuracy (LIRA's ``accuracy2``) per attribute.

    Args:
        questions: the JSONL file (default ``refcoco_attri/refcoco_attri.jsonl``).
        images: folder that relative ``image`` paths start from; by default the data root, then its
            parent (LIRA's files hold ``data/...`` paths relative to the repository root).
    """

    family = "attreval"
    kind = "vqa"
    prompt_template = "{question}"
    generation = GenerationSettings(max_new_tokens=10, min_new_tokens=1)

    def __init__(self, name: str, questions: Path | None = None, images: Path | None = None) -> None:
        paths = {key: value for key, value in (("questions", questions), ("images", images)) if value}
        super().__init__(name, **paths)
        self.paths = paths

    def data_files(self, data_root: Path) -> dict[str, Path]:
        return {"questions": self.paths.get("questions") or data_root / ATTREVAL_QUESTIONS}

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


__all__ = ["AttrEvalQATask"]
