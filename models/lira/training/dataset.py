"""The training mix: encoded conversations with their images, masks and ILVC crops, and batch collation.

`TrainingDataset` reads every source of the config (`sources.py`), encodes each conversation (`conversation.py`)
and checks it once, up front, so that every rank sees the same sample list. A sample is left out, and counted by
reason, when:

- its image or a pre-rendered crop file is missing;
- it is longer than `data.max_length` text tokens (or, with `overlong: truncate`, its truncation cuts a grounded
  phrase in two);
- its answers' `[SEG]` tokens are not two per mask (the original instead multiplies the whole batch's mask loss by
  0), or its crop placeholders are not one per mask, or its questions do not hold exactly one `<image>`;
- it has nothing to supervise, or no image (text-only rows are not supported by `LiraModel.forward`).

What can only fail when a sample is loaded (an unreadable image or crop, a mask that does not decode or does not
fit its image) comes back from `__getitem__` as a `SkippedExample`; the trainer counts it and trains on the rest.

Index space: source after source (each `copies` times), each listing's items `repeats` times in a row, as the
original's `CombineDataset` of `*Dataset`s whose `__len__` is `repeats × real_len`. `lengths` are xtuner's
`modality_length` for every index.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from harness.errors import UserError
from models.lira.config import LiraConfig
from models.lira.model import IGNORE_INDEX
from models.lira.processor import (
    TileSetting,
    highlight_crop,
    preprocess_internvl,
    preprocess_omg,
)
from models.lira.tokenizer import IMAGE_TOKEN_INDEX, InternLM2Tokenizer
from models.lira.training.config import TrainConfig
from models.lira.training.conversation import ConversationEncoder
from models.lira.training.sources import RawSample, Segmentation, read_source

log = logging.getLogger(__name__)

LOCAL_CROP_TILES = TileSetting(1, 1)
"""The ILVC crop: one stretched tile, no thumbnail (`dynamic_preprocess(min_num=1, max_num=1)`)."""


class SampleProblem(Exception):
    """Why one sample cannot be trained on; `reason` keys the skip counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------


def _decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    size = rle.get("size")
    if not (isinstance(size, list | tuple) and len(size) == 2) or "counts" not in rle:
        raise ValueError("an RLE needs 'size' [height, width] and 'counts'")
    if (int(size[0]), int(size[1])) != (height, width):
        raise ValueError(f"RLE size {list(size)} differs from the image's [{height}, {width}]")
    counts = rle["counts"]
    if isinstance(counts, list):
        encoded = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        encoded = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(encoded)


def decode_segmentation(segmentation: Segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, a list of RLEs, one RLE, or empty) as one `(height, width)` uint8 0/1 mask.

    The parts are joined (logical or); the original adds them, which gives 2 where parts overlap.

    Raises:
        ValueError: a malformed segmentation or an RLE of another size.
    """
    if isinstance(segmentation, dict):
        return (_decode_rle(segmentation, height, width) != 0).astype(np.uint8)
    if not isinstance(segmentation, list):
        raise ValueError(f"a segmentation must be a list or an RLE object, got {type(segmentation).__name__}")
    mask = np.zeros((height, width), dtype=np.uint8)
    polygons = [part for part in segmentation if isinstance(part, list)]
    for part in segmentation:
        if isinstance(part, dict):
            mask |= _decode_rle(part, height, width) != 0
        elif not isinstance(part, list):
            raise ValueError("each part of a segmentation must be a polygon or an RLE object")
    if polygons:
        if any(len(p) < 6 or len(p) % 2 for p in polygons):
            raise ValueError("a polygon needs at least three (x, y) pairs")
        rles = coco_mask.frPyObjects([[float(v) for v in p] for p in polygons], height, width)
        mask |= coco_mask.decode(rles).any(axis=2).astype(np.uint8)
    return mask


# ---------------------------------------------------------------------------
# Samples and batches
# ---------------------------------------------------------------------------


@dataclass
class EncodedSample:
    """A conversation ready to load: its raw form and its token ids and labels (numpy int64)."""

    raw: RawSample
    input_ids: np.ndarray
    labels: np.ndarray


@dataclass
class TrainingExample:
    """One loaded sample.

    Attributes:
        index: its index in the dataset.
        input_ids / labels: `(L,)` int64.
        seg_pixel_values: `(3, S, S)` OMG-Seg input.
        internvl_pixel_values: `(T, 3, t, t)` InternVL tiles, or None in stage 1.
        local_crops: `(n, 3, t, t)` one ILVC crop tile per grounding.
        masks: `(n, height, width)` uint8 ground-truth masks at the image's size.
    """

    index: int
    input_ids: torch.Tensor
    labels: torch.Tensor
    seg_pixel_values: torch.Tensor
    internvl_pixel_values: torch.Tensor | None
    local_crops: torch.Tensor
    masks: torch.Tensor


@dataclass
class SkippedExample:
    """A sample that failed to load."""

    index: int
    reason: str
    detail: str


@dataclass
class TrainingBatch:
    """Collated examples, in the keyword layout of `LiraModel.forward` (`model_inputs`).

    `skipped` holds the samples of this batch that failed to load; a batch may be `empty`.
    """

    indices: list[int]
    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    seg_pixel_values: torch.Tensor
    internvl_pixel_values: list[torch.Tensor] | None
    local_crop_pixel_values: list[torch.Tensor] | None
    gt_masks: list[torch.Tensor] | None
    skipped: list[SkippedExample] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.indices

    @property
    def text_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device: torch.device) -> TrainingBatch:
        def move(tensors: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
            return None if tensors is None else [t.to(device, non_blocking=True) for t in tensors]

        return TrainingBatch(
            indices=self.indices,
            input_ids=self.input_ids.to(device),
            labels=self.labels.to(device),
            attention_mask=self.attention_mask.to(device),
            seg_pixel_values=self.seg_pixel_values.to(device),
            internvl_pixel_values=move(self.internvl_pixel_values),
            local_crop_pixel_values=move(self.local_crop_pixel_values),
            gt_masks=move(self.gt_masks),
            skipped=self.skipped,
        )

    def model_inputs(self) -> dict[str, object]:
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "attention_mask": self.attention_mask,
            "seg_pixel_values": self.seg_pixel_values,
            "internvl_pixel_values": self.internvl_pixel_values,
            "local_crop_pixel_values": self.local_crop_pixel_values,
            "gt_masks": self.gt_masks,
        }


def collate(items: Sequence[TrainingExample | SkippedExample], pad_token_id: int = 0) -> TrainingBatch:
    """Right-pad the examples (ids with `pad_token_id`, labels with `IGNORE_INDEX`) and gather their images; the
    skipped ones are carried along in `skipped`."""
    examples = [item for item in items if isinstance(item, TrainingExample)]
    skipped = [item for item in items if isinstance(item, SkippedExample)]
    if not examples:
        none = torch.zeros(0, 0, dtype=torch.long)
        return TrainingBatch([], none, none, none, torch.zeros(0), None, None, None, skipped)
    width = max(example.input_ids.shape[0] for example in examples)
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = example.input_ids.shape[0]
        ids[row, :length] = example.input_ids
        labels[row, :length] = example.labels
        attention[row, :length] = 1
    tiles = [e.internvl_pixel_values for e in examples]
    has_crops = any(e.local_crops.shape[0] for e in examples)
    has_masks = any(e.masks.shape[0] for e in examples)
    return TrainingBatch(
        indices=[e.index for e in examples],
        input_ids=ids,
        labels=labels,
        attention_mask=attention,
        seg_pixel_values=torch.stack([e.seg_pixel_values for e in examples]),
        internvl_pixel_values=None if any(t is None for t in tiles) else tiles,  # type: ignore[misc]
        local_crop_pixel_values=[e.local_crops for e in examples] if has_crops else None,
        gt_masks=[e.masks for e in examples] if has_masks else None,
        skipped=skipped,
    )


# ---------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------


def check_tokenizer(tokenizer: InternLM2Tokenizer, config: LiraConfig, source: str) -> None:
    """The tokenizer must give the chat and LIRA tokens the ids the model is built for.

    Raises:
        UserError: naming each token whose id differs.
    """
    chat, added = config.vision_language.chat_tokens, config.added_tokens
    expected = {
        "<|im_end|>": chat.im_end,
        "<|im_start|>": chat.im_start,
        "[SEG]": added.seg,
        "<p>": added.p_start,
        "</p>": added.p_end,
        "<image_id>": added.image_id,
    }
    wrong = {t: tokenizer.token_to_id(t) for t, i in expected.items() if tokenizer.token_to_id(t) != i}
    if wrong:
        listed = ", ".join(f"{t!r} is {got} (the model expects {expected[t]})" for t, got in wrong.items())
        raise UserError(f"tokenizer {source} does not fit the model: {listed}")
    vocab = config.vision_language.text.vocab_size
    if len(tokenizer) > vocab:
        raise UserError(f"tokenizer {source} has {len(tokenizer)} tokens, more than the model's vocabulary {vocab}")


@dataclass(frozen=True)
class ImageSettings:
    """Image pipelines of the model being trained."""

    tile_size: int
    max_tiles: int
    seg_image_size: int
    internvl_tiles: bool
    """False in stage 1, whose layout feeds no InternVL tokens."""

    @classmethod
    def for_model(cls, config: LiraConfig, max_tiles: int) -> ImageSettings:
        return cls(
            tile_size=config.vision_language.vision.image_size,
            max_tiles=max_tiles,
            seg_image_size=config.seg_image_size,
            internvl_tiles=config.stage == "finetune",
        )


class TrainingDataset(torch.utils.data.Dataset):
    """Every source of `config.data`, encoded and checked (see the module docstring).

    Attributes:
        samples: the kept samples, listing after listing.
        lengths: xtuner `modality_length` of every index (text tokens; negative for a text-only sample).
        skipped: samples left out when reading, by reason; `skip_examples` holds one message per reason.
        per_source: kept samples per source name (before `repeats`).
    """

    def __init__(self, config: TrainConfig, tokenizer: InternLM2Tokenizer, model_config: LiraConfig) -> None:
        self.seed = config.seed
        self.seg_token = model_config.added_tokens.seg
        self.finetune = config.stage == "finetune"
        self.images = ImageSettings.for_model(model_config, config.data.max_tiles)
        self.max_length = config.data.max_length
        self.overlong = config.data.overlong
        self.pad_token_id = tokenizer.pad_token_id or 0
        self.skipped: Counter[str] = Counter()
        self.skip_examples: dict[str, str] = {}
        self.per_source: Counter[str] = Counter()
        self.samples: list[EncodedSample] = []
        index_map: list[np.ndarray] = []
        encoder = ConversationEncoder(tokenizer)
        root = Path(config.data.root)
        for spec in config.data.sources:
            for copy in range(spec.copies):
                read = read_source(spec, root, config.seed, copy)
                for reason, count in read.skipped.items():
                    self._count(f"{spec.name}: {reason}", read.examples[reason], count)
                first = len(self.samples)
                for raw in read.samples:
                    try:
                        self.samples.append(self._encode(raw, encoder))
                    except SampleProblem as problem:
                        self._count(f"{spec.name}: {problem.reason}", problem.detail)
                kept = np.arange(first, len(self.samples))
                self.per_source[spec.name] += len(kept)
                index_map.append(np.tile(kept, spec.repeats))
        self.index_map = np.concatenate(index_map) if index_map else np.zeros(0, dtype=np.int64)
        if len(self.index_map) == 0:
            raise UserError(f"no training sample is left; samples left out: {dict(self.skipped)}")
        self.lengths = [len(self.samples[item].input_ids) for item in self.index_map.tolist()]

    def _count(self, reason: str, detail: str, count: int = 1) -> None:
        self.skipped[reason] += count
        if reason not in self.skip_examples:
            self.skip_examples[reason] = detail
            log.info("skipping %s (%s)", reason, detail)

    def _encode(self, raw: RawSample, encoder: ConversationEncoder) -> EncodedSample:
        if not raw.turns:
            raise SampleProblem("empty conversation", f"{raw.record}: no question with an answer")
        if raw.image is None:
            raise SampleProblem("text-only conversation", f"{raw.record}: no image (text-only rows are not supported)")
        if not raw.image.is_file():
            raise SampleProblem("missing image", f"{raw.record}: {raw.image} does not exist")
        for grounding in raw.groundings:
            if grounding.crop_path is not None and not Path(grounding.crop_path).is_file():
                raise SampleProblem("missing crop image", f"{raw.record}: {grounding.crop_path} does not exist")
        try:
            encoded = encoder.encode(raw.turns)
        except ValueError as error:
            raise SampleProblem("image placeholders", f"{raw.record}: {error}") from None
        ids = np.asarray(encoded.input_ids, dtype=np.int64)
        labels = np.asarray(encoded.labels, dtype=np.int64)
        if len(ids) > self.max_length:
            detail = f"{raw.record}: {len(ids)} tokens > max_length {self.max_length}"
            if self.overlong == "skip":
                raise SampleProblem("over-long conversation", detail)
            ids, labels = ids[: self.max_length], labels[: self.max_length]
            kept = int(((ids == IMAGE_TOKEN_INDEX) & (labels != IGNORE_INDEX)).sum())
            raw = RawSample(raw.source, raw.record, raw.image, raw.turns, raw.groundings[:kept])
            try:
                self._check(raw, ids, labels)
            except SampleProblem as problem:
                reason = "over-long conversation (truncation leaves it unusable)"
                raise SampleProblem(reason, f"{detail}; truncated: {problem.detail}") from None
        else:
            self._check(raw, ids, labels)
        return EncodedSample(raw, ids, labels)

    def _check(self, raw: RawSample, ids: np.ndarray, labels: np.ndarray) -> None:
        placeholder = ids == IMAGE_TOKEN_INDEX
        in_questions = int((placeholder & (labels == IGNORE_INDEX)).sum())
        in_answers = int((placeholder & (labels != IGNORE_INDEX)).sum())
        masks = len(raw.groundings)
        if in_questions != 1:
            raise SampleProblem("image placeholders", f"{raw.record}: {in_questions} <image> in the questions")
        if in_answers != masks:
            detail = f"{raw.record}: {in_answers} crop placeholders in the answers for {masks} masks"
            raise SampleProblem("crop placeholders do not match masks", detail)
        if self.finetune:
            seg = int((labels == self.seg_token).sum())
            if seg != 2 * masks:
                detail = f"{raw.record}: {seg} [SEG] tokens for {masks} masks (expected {2 * masks})"
                raise SampleProblem("[SEG] tokens do not match masks", detail)
        if not (labels >= 0).any():
            raise SampleProblem("no supervised tokens", f"{raw.record}: every label is ignored")

    def __len__(self) -> int:
        return len(self.index_map)

    def __getitem__(self, index: int) -> TrainingExample | SkippedExample:
        sample = self.samples[int(self.index_map[index])]
        try:
            return self._load(index, sample)
        except SampleProblem as problem:
            return SkippedExample(index, f"{sample.raw.source}: {problem.reason}", problem.detail)

    def _load(self, index: int, sample: EncodedSample) -> TrainingExample:
        raw = sample.raw
        assert raw.image is not None
        image = _open_rgb(raw.image, "unreadable image", raw.record)
        width, height = image.size
        settings = self.images
        masks = []
        for number, grounding in enumerate(raw.groundings):
            try:
                masks.append(decode_segmentation(grounding.segmentation, height, width))
            except (ValueError, TypeError) as error:
                raise SampleProblem("bad mask", f"{raw.record}: mask {number}: {error}") from None
        crops = []
        for mask, grounding in zip(masks, raw.groundings, strict=True):
            if grounding.crop_path is None:
                crop = highlight_crop(image, mask)
            else:
                crop = _open_rgb(Path(grounding.crop_path), "unreadable crop image", raw.record)
            crops.append(preprocess_internvl(crop, LOCAL_CROP_TILES, settings.tile_size).pixel_values)
        tiles = None
        if settings.internvl_tiles:
            tiles = preprocess_internvl(image, TileSetting(1, settings.max_tiles), settings.tile_size).pixel_values
        empty_crops = torch.zeros(0, 3, settings.tile_size, settings.tile_size)
        return TrainingExample(
            index=index,
            input_ids=torch.from_numpy(sample.input_ids),
            labels=torch.from_numpy(sample.labels),
            seg_pixel_values=preprocess_omg(image, settings.seg_image_size),
            internvl_pixel_values=tiles,
            local_crops=torch.cat(crops) if crops else empty_crops,
            masks=torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, height, width, dtype=torch.uint8),
        )

    def describe(self) -> dict[str, object]:
        """Counts for logs and the report."""
        return {
            "samples": len(self.samples),
            "indices_per_epoch": len(self),
            "per_source": dict(self.per_source),
            "skipped": dict(self.skipped),
            "skip_examples": dict(self.skip_examples),
        }


def _open_rgb(path: Path, reason: str, record: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise SampleProblem(reason, f"{record}: {path}: {error}") from None


__all__ = [
    "LOCAL_CROP_TILES",
    "EncodedSample",
    "ImageSettings",
    "SkippedExample",
    "TrainingBatch",
    "TrainingDataset",
    "TrainingExample",
    "check_tokenizer",
    "collate",
    "decode_segmentation",
]
