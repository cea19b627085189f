"""CHAIR object hallucination in detailed captions of COCO val2014 images (OPERA protocol).

Ground truth per image (metrics.md §4.3): the union of the node words of its COCO instance
categories and of the objects found in its COCO captions, over train2014 + val2014 files. The
evaluated images are 500 val2014 images drawn with ``seed`` (recorded), or the ids of ``image_ids``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.errors import DataError, UserError
from harness.metrics.base import Metric
from harness.metrics.captions import CaptionScores
from harness.metrics.chair import Chair, caption_to_objects, category_node_word
from harness.task import Task
from harness.types import GenerationSettings, Prediction, Sample
from tasks.gcg import check_caption_scorers
from tasks.layout import CHAIR_ANNOTATIONS, CHAIR_IMAGES
from tasks.loaders.chair import choose_images, load_coco, read_image_ids

PROMPTS = {
    "opera": "Please describe this image in detail.",
    "lira": "Provide an in-depth description of this image.",
}
"""OPERA ``chair_eval.py``'s question, and the one LIRA's ``evaluate_chair.py`` asks instead."""


class ChairTask(Task):
    """CHAIR_s, CHAIR_i, recall and length of generated captions.

    Args:
        annotations: folder of ``{captions,instances}_{train,val}2014.json`` (default ``chair/annotations``).
        images: folder of the val2014 images (default ``coco/val2014``).
        image_ids: a list of image ids to evaluate (OPERA log, LIRA ``chair_test.jsonl``, JSON list or
            text); when given, ``num_images`` and ``seed`` are not used.
        num_images / seed: how many val2014 images to draw, and the seed of the draw.
        annotation_splits: COCO files read for the ground truth; the reference reads ``train;val``.
        prompt: ``opera`` (default) or ``lira``.
        caption_scorers: caption metrics against the COCO captions as well (none by default).
    """

    family = "chair"
    kind = "caption"
    generation = GenerationSettings(max_new_tokens=512)

    def __init__(
        self,
        name: str,
        annotations: Path | None = None,
        images: Path | None = None,
        image_ids: Path | None = None,
        num_images: int = 500,
        seed: int = 0,
        annotation_splits: tuple[str, ...] = ("train", "val"),
        prompt: Literal["opera", "lira"] = "opera",
        caption_scorers: tuple[str, ...] = (),
    ) -> None:
        if "val" not in annotation_splits or not set(annotation_splits) <= {"train", "val"}:
            raise UserError(
                f"chair annotation_splits must be 'val' or 'train;val', got {';'.join(annotation_splits)!r}"
            )
        if num_images < 1:
            raise UserError(f"chair num_images must be at least 1, got {num_images}")
        check_caption_scorers(caption_scorers)
        paths = {key: value for key, value in (("annotations", annotations), ("images", images)) if value}
        selection = {"image_ids": image_ids} if image_ids else {"num_images": num_images, "seed": seed}
        super().__init__(
            name,
            annotation_splits=annotation_splits,
            prompt=prompt,
            caption_scorers=caption_scorers,
            **paths,
            **selection,
        )
        self.paths, self.image_ids, self.num_images, self.seed = paths, image_ids, num_images, seed
        self.annotation_splits, self.caption_scorers = tuple(annotation_splits), tuple(caption_scorers)
        self.prompt_template = PROMPTS[prompt]

    def data_files(self, data_root: Path) -> dict[str, Path]:
        folder = self.paths.get("annotations") or data_root / CHAIR_ANNOTATIONS
        files = {
            f"{kind}_{split}": folder / f"{kind}_{split}2014.json"
            for split in self.annotation_splits
            for kind in ("captions", "instances")
        }
        if self.image_ids:
            files["image_ids"] = self.image_ids
        return files

    def samples(self, data_root: Path) -> list[Sample]:
        folder = self.paths.get("annotations") or data_root / CHAIR_ANNOTATIONS
        coco = load_coco(folder, self.annotation_splits)
        listed = read_image_ids(self.image_ids) if self.image_ids else None
        chosen = choose_images(coco.images, self.num_images, self.seed, listed, str(self.image_ids))
        images = self.paths.get("images") or data_root / CHAIR_IMAGES
        samples = []
        for image_id in chosen:
            image, captions = coco.images[image_id], coco.captions.get(image_id, [])
            try:
                objects = {category_node_word(name) for name in coco.categories.get(image_id, ())}
            except ValueError as error:
                raise DataError(f"COCO instances file under {folder}, image {image_id}: {error}") from None
            for caption in captions:
                objects.update(caption_to_objects(caption))
            samples.append(
                Sample(
                    sample_id=str(image_id),
                    image=str(images / image.file_name),
                    target={"objects": sorted(objects), "captions": list(captions)},
                    image_size=(image.height, image.width),
                )
            )
        return samples

    def reference(self, sample: Sample) -> Prediction:
        """A caption naming every ground-truth object and nothing else."""
        objects = sample.target["objects"]
        if not objects:
            return Prediction(text="An image.")
        listed = ", ".join(f"a {word}" for word in objects[:-1])
        return Prediction(text=f"There is {listed + ' and ' if listed else ''}a {objects[-1]}.")

    def metrics(self) -> list[Metric]:
        metrics: list[Metric] = [Chair()]
        if self.caption_scorers:
            metrics.append(CaptionScores(scorers=self.caption_scorers))
        return metrics


__all__ = ["PROMPTS", "ChairTask"]
