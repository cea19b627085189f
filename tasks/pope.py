"""POPE object-hallucination probing: yes/no questions, scored by accuracy, precision, recall, F1, yes-ratio.

COCO files are JSON Lines, the A-OKVQA and GQA (SEEM) files JSON arrays (data-formats.md §4); both
are read the same way. The data version found (2,910 vs 3,000 questions in COCO ``random``) is
recorded in the task's configuration in ``results.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from harness.errors import UserError
from harness.metrics.base import Metric
from harness.metrics.pope import Pope
from harness.task import Task
from harness.types import GenerationSettings, Prediction, Sample
from tasks.layout import POPE_FILES
from tasks.loaders.common import resolve_image
from tasks.loaders.pope import ANSWER_SUFFIX, data_version, load_pope


class PopeTask(Task):
    """One POPE setting of one source.

    Args:
        source: ``coco``, ``aokvqa`` or ``gqa``; setting: ``random``, ``popular`` or ``adversarial``
            (both fixed per registered task).
        questions / images: explicit paths replacing the layout's.
        parser: the answer parser of `Pope` (``official`` = POPE/LLaVA/LIRA, ``opera``, ``exact``).
        num_beams: beams of the decoding (LIRA's POPE script uses 5; most others 1).
    """

    family = "pope"
    kind = "vqa"
    prompt_template = "{question}" + ANSWER_SUFFIX

    def __init__(
        self,
        name: str,
        source: Literal["coco", "aokvqa", "gqa"],
        setting: Literal["random", "popular", "adversarial"],
        questions: Path | None = None,
        images: Path | None = None,
        parser: Literal["official", "opera", "exact"] = "official",
        num_beams: int = 5,
    ) -> None:
        if num_beams < 1:
            raise UserError(f"pope num_beams must be at least 1, got {num_beams}")
        paths = {key: value for key, value in (("questions", questions), ("images", images)) if value}
        super().__init__(name, source=source, setting=setting, parser=parser, num_beams=num_beams, **paths)
        self.source, self.setting, self.parser, self.paths = source, setting, parser, paths
        self.generation = GenerationSettings(max_new_tokens=100, min_new_tokens=1, num_beams=num_beams)
        self.data_version: dict[str, Any] | None = None

    def data_files(self, data_root: Path) -> dict[str, Path]:
        pattern = POPE_FILES[self.source][0]
        return {"questions": self.paths.get("questions") or data_root / pattern.format(setting=self.setting)}

    def samples(self, data_root: Path) -> list[Sample]:
        questions = load_pope(self.data_files(data_root)["questions"])
        self.data_version = data_version(self.source, self.setting, questions)
        images = self.paths.get("images") or data_root / POPE_FILES[self.source][1]
        return [
            Sample(
                sample_id=question.question_id,
                image=resolve_image(question.image, [images]),
                target={"label": question.label, "question_id": question.question_id},
                inputs={"question": question.text},
            )
            for question in questions
        ]

    def reference(self, sample: Sample) -> Prediction:
        return Prediction(text=sample.target["label"].capitalize())

    def metrics(self) -> list[Metric]:
        return [Pope(parser=self.parser)]

    def config(self) -> dict[str, Any]:
        config = super().config()
        if self.data_version is not None:
            config["data_version"] = self.data_version
        return config


__all__ = ["PopeTask"]
