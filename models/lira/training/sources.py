"""Readers of the training annotation formats (data-formats.md §1.6, §3.5, §7) into `RawSample`s.

Each reader turns one annotation file (or REFER folder) into conversations in LIRA's ILVC format with one
`Grounding` (mask + local crop) per grounded phrase, in answer order, reproducing the original's process functions
(`omg_llava/dataset/process_functions/{referring_seg,gcg}_process.py`, the `*Dataset.json_file_preprocess` methods):

- `llava`: `LLaVADataset` + `llava_map_fn`.
- `refcoco`: `Refcoco*_ReferringSegDataset` + `referring_seg_gcg_format_map_fn` on a REFER folder
  (`ref_seg_high/<dataset>/`): per image, every sentence of every train ref; up to `max_expressions` drawn without
  replacement; one turn each, `"Please segment {sent.lower()}."` → `"[SEG]<image_id><image> <p> {sent.lower()} </p>
  [SEG]."`. Images are taken in id order (the original: set order).
- `grandf` / `openpsg`: `GranDfGCGDataset` / `OpenPsgGCGDataset` + `glamm_granf_map_fn`: caption stripped of quotes,
  phrases at `token_positives`, sorted by start and wrapped from the right; each phrase's `rle_masks` are joined.
- `refcocog_gcg`: `RefCOCOgGCGDataset` + `glamm_refcocog_map_fn`: caption lower-cased; a ref whose sentence occurs in
  it becomes a phrase at the first occurrence; spans sorted by start, and a span that reaches the next one is cut
  to end one character before it.
- `flickr_gcg`: `FlickrGCGDataset` + `glamm_flickr_map_fn`: captions with fewer than 3 words and images with a side
  under 32 px are dropped; annotations flagged `ignore`, with an empty box or area, are not phrases; each kept
  annotation's first `tokens_positive` span is its phrase, `sam_mask` its mask.

Where the original is ambiguous or broken, this module does the sane thing and says so: RefCOCOg-GCG searches the
lower-cased sentence (the original's `find` uses the sentence as written and gets -1 for one with capitals), and
trims overlaps in caption order (the original walks its unsorted list while indexing the sorted one); a phrase left
empty by trimming is dropped with its mask; an annotation record that is malformed, a GCG sample without phrases
(the original substitutes item 0) and GCG spans that overlap are counted and skipped instead of crashing or
producing tangled text.

Random draws (expressions, GCG questions) happen once, when the data are read, as in the original (whose map
functions run once over the dataset), from `random.Random` seeded by (seed, source name, copy).
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError
from models.lira.tokenizer import IMAGE_PLACEHOLDER
from models.lira.training.config import SourceSpec
from models.lira.training.conversation import (
    GCG_QUESTIONS,
    REFERRING_QUESTION,
    Turn,
    llava_turns,
    referring_answer,
    tag_caption,
    with_image_first,
)
from tasks.loaders.refer import in_split, load_instances, load_refs

Segmentation = Any
"""A COCO segmentation: a list of polygons, a list of RLE dicts, or one RLE dict (decoded in `masks.py`)."""


@dataclass(frozen=True)
class Grounding:
    """The mask of one grounded phrase and where its ILVC crop comes from.

    Attributes:
        segmentation: the phrase's COCO segmentation (all parts are joined into one binary mask).
        crop_path: the pre-rendered local crop (`seg_img_path`), or None to render it from image and mask.
    """

    segmentation: Segmentation
    crop_path: str | None


@dataclass(frozen=True)
class RawSample:
    """One training conversation before tokenisation.

    Attributes:
        source: the `SourceSpec.name` it comes from.
        record: where in the annotations it was read (for messages).
        image: path of the image, or None for a text-only conversation.
        turns: question/answer turns; answers hold one `<image>` per grounding.
        groundings: one per grounded phrase, in answer order.
    """

    source: str
    record: str
    image: Path | None
    turns: tuple[Turn, ...]
    groundings: tuple[Grounding, ...] = ()


@dataclass
class SourceRead:
    """The samples of one source, the records left out counted by reason, and one example message per reason."""

    samples: list[RawSample]
    skipped: Counter[str]
    examples: dict[str, str]

    def skip(self, error: RecordSkipped) -> None:
        self.skipped[error.reason] += 1
        self.examples.setdefault(error.reason, error.detail)


class RecordSkipped(Exception):
    """An annotation record that cannot become a training sample; `reason` is what the counts are keyed by."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


MALFORMED = "malformed annotation record"


def _malformed(where: str, what: str) -> RecordSkipped:
    return RecordSkipped(MALFORMED, f"{where}: {what}")


def _read_json(path: Path, what: str) -> Any:
    try:
        with path.open(encoding="utf-8") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{what} {path}: cannot be read as JSON ({error})") from None


def _resolve(base: Path, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def _crop(value: Any, spec: SourceSpec, root: Path, where: str) -> str | None:
    """The crop path of a grounding under the source's `crops` policy."""
    if spec.crops == "render":
        return None
    if value is None:
        if spec.crops == "file":
            detail = f"{where}: no 'seg_img_path' (crops=file needs pre-rendered crops)"
            raise RecordSkipped("missing crop path", detail)
        return None
    if not isinstance(value, str):
        raise _malformed(where, "'seg_img_path' must be a string")
    return str(_resolve(root, value))


# ---------------------------------------------------------------------------
# LLaVA
# ---------------------------------------------------------------------------


def read_llava(spec: SourceSpec, root: Path, rng: random.Random) -> SourceRead:
    """`LLaVADataset`: a JSON list of `{id, image?, conversations}`."""
    del rng  # nothing is drawn
    path = _resolve(root, spec.annotations)
    data = _read_json(path, "LLaVA conversation file")
    if not isinstance(data, list):
        raise DataError(f"LLaVA conversation file {path}: expected a JSON list of records")
    images = _resolve(root, spec.images)
    read = SourceRead([], Counter(), {})
    for index, record in enumerate(data):
        where = f"{path} record {index}"
        try:
            if not isinstance(record, dict):
                raise _malformed(where, "expected an object")
            image = record.get("image")
            if image is not None and not isinstance(image, str):
                raise _malformed(where, "'image' must be a string")
            try:
                turns = llava_turns(record.get("conversations"), where)
            except DataError as error:
                raise RecordSkipped(MALFORMED, str(error)) from None
        except RecordSkipped as error:
            read.skip(error)
            continue
        image_path = None if image is None else images / image
        read.samples.append(RawSample(spec.name, f"{where} (id {record.get('id')})", image_path, tuple(turns)))
    return read


# ---------------------------------------------------------------------------
# RefCOCO family (REFER folder with seg_img_path)
# ---------------------------------------------------------------------------


def _referring_turns(expressions: list[str]) -> tuple[Turn, ...]:
    """`referring_seg_gcg_format_conversations` + the map function's `<image>` handling."""
    turns = []
    for number, expression in enumerate(expressions):
        question = REFERRING_QUESTION.format(expression=expression.lower())
        if number == 0:
            question = with_image_first(IMAGE_PLACEHOLDER + question)
        turns.append(Turn(question, referring_answer(expression.lower())))
    return tuple(turns)


def read_refcoco(spec: SourceSpec, root: Path, rng: random.Random) -> SourceRead:
    """`Refcoco*_ReferringSegDataset` with `referring_seg_gcg_format_map_fn` (one sample per image)."""
    assert spec.dataset is not None
    split_by = spec.split_by or ("umd" if spec.dataset == "refcocog" else "unc")
    folder = _resolve(root, spec.annotations) / spec.dataset
    refs = [ref for ref in load_refs(folder / f"refs({split_by}).p") if in_split(ref.split, spec.split)]
    instances = load_instances(folder / "instances.json")
    images = _resolve(root, spec.images)
    by_image: dict[int, list[Any]] = {}
    for ref in refs:  # file order within an image, as REFER's img2refs
        by_image.setdefault(ref.image_id, []).append(ref)
    read = SourceRead([], Counter(), {})
    for image_id in sorted(by_image):
        where = f"{folder} image {image_id}"
        units = [(sentence.sent, ref.ann_id) for ref in by_image[image_id] for sentence in ref.sentences]
        try:
            image = instances.images.get(image_id)
            if image is None:
                raise _malformed(where, "the image is not in instances.json")
            missing = sorted({ann_id for _, ann_id in units if ann_id not in instances.segmentations})
            if missing:
                raise _malformed(where, f"annotations {missing} are not in instances.json")
            if not units:
                raise RecordSkipped("no referring expression", f"{where}: its refs have no sentence")
            count = min(spec.max_expressions, len(units))
            chosen = rng.sample(range(len(units)), count) if len(units) > count else list(range(len(units)))
            expressions = [units[i][0].strip() for i in chosen]
            if any("||" in expression for expression in expressions):
                raise _malformed(where, "an expression holds '||' (the original asserts there is none)")
            groundings = tuple(
                Grounding(
                    instances.segmentations[units[i][1]],
                    _crop(instances.seg_img_paths.get(units[i][1]), spec, root, f"{where} annotation {units[i][1]}"),
                )
                for i in chosen
            )
        except RecordSkipped as error:
            read.skip(error)
            continue
        sample = RawSample(spec.name, where, images / image.file_name, _referring_turns(expressions), groundings)
        read.samples.append(sample)
    return read


# ---------------------------------------------------------------------------
# GCG sets
# ---------------------------------------------------------------------------

Phrase = tuple[tuple[int, int], Segmentation, "str | None"]


def _gcg_sample(
    spec: SourceSpec, where: str, image: Path, caption: str, phrases: list[Phrase], rng: random.Random
) -> RawSample:
    """A GCG conversation: a drawn question and the caption with its phrases wrapped (spans sorted by start)."""
    phrases = sorted(phrases, key=lambda phrase: phrase[0][0])
    question = with_image_first(IMAGE_PLACEHOLDER + rng.choice(GCG_QUESTIONS).strip())
    answer = tag_caption(caption, [span for span, _, _ in phrases])
    groundings = tuple(Grounding(segmentation, crop) for _, segmentation, crop in phrases)
    return RawSample(spec.name, where, image, (Turn(question, answer),), groundings)


def _check_spans(caption: str, phrases: list[Phrase], where: str) -> None:
    ordered = sorted(span for span, _, _ in phrases)
    for start, end in ordered:
        if not 0 <= start < end <= len(caption):
            raise _malformed(where, f"phrase span [{start}, {end}) is outside the {len(caption)}-character caption")
    for (start, end), (next_start, _) in itertools.pairwise(ordered):
        if end > next_start:
            raise RecordSkipped("phrase spans overlap", f"{where}: spans [{start}, {end}) and [{next_start}, ...)")
    if not phrases:
        raise RecordSkipped("no grounded phrase", f"{where}: no phrase is grounded")


def _span(value: Any, where: str) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise _malformed(where, "a phrase span must be [start, end]")
    return int(value[0]), int(value[1])


def _records(data: Any, path: Path) -> list[Any]:
    if not isinstance(data, list):
        raise DataError(f"GCG annotation file {path}: expected a JSON list of records")
    return data


def read_grandf(spec: SourceSpec, root: Path, rng: random.Random) -> SourceRead:
    """GranD-f and OpenPSG-GCG: `[{file_name, caption, groundings: {phrase: {token_positives, rle_masks,
    seg_img_path} | null}}]`."""
    path = _resolve(root, spec.annotations)
    images = _resolve(root, spec.images)
    read = SourceRead([], Counter(), {})
    for index, record in enumerate(_records(_read_json(path, "GCG annotation file"), path)):
        where = f"{path} record {index}"
        try:
            if not isinstance(record, dict) or not isinstance(record.get("file_name"), str):
                raise _malformed(where, "expected an object with a string 'file_name'")
            if not isinstance(record.get("caption"), str) or not isinstance(record.get("groundings"), dict):
                raise _malformed(where, "needs a string 'caption' and an object 'groundings'")
            caption = record["caption"].strip('"').strip()
            phrases: list[Phrase] = []
            for phrase, grounding in record["groundings"].items():
                if grounding is None:
                    continue
                at = f"{where} grounding {phrase!r}"
                if not isinstance(grounding, dict) or not isinstance(grounding.get("rle_masks"), list):
                    raise _malformed(at, "needs 'token_positives' and a list 'rle_masks'")
                span = _span(grounding.get("token_positives"), at)
                phrases.append((span, grounding["rle_masks"], _crop(grounding.get("seg_img_path"), spec, root, at)))
            _check_spans(caption, phrases, where)
        except RecordSkipped as error:
            read.skip(error)
            continue
        read.samples.append(_gcg_sample(spec, where, images / record["file_name"], caption, phrases, rng))
    return read


def read_refcocog_gcg(spec: SourceSpec, root: Path, rng: random.Random) -> SourceRead:
    """RefCOCOg-GCG: `[{<id>: {img_file_name, caption, refs: [{sentence, segmentation, seg_img_path}]}}]`."""
    path = _resolve(root, spec.annotations)
    images = _resolve(root, spec.images)
    read = SourceRead([], Counter(), {})
    for index, record in enumerate(_records(_read_json(path, "GCG annotation file"), path)):
        where = f"{path} record {index}"
        try:
            if not isinstance(record, dict) or len(record) != 1:
                raise _malformed(where, "expected an object with one key (the record id)")
            ((record_id, body),) = record.items()
            where = f"{path} record {index} (id {record_id})"
            if not isinstance(body, dict) or not isinstance(body.get("img_file_name"), str):
                raise _malformed(where, "needs a string 'img_file_name'")
            if not isinstance(body.get("caption"), str) or not isinstance(body.get("refs"), list):
                raise _malformed(where, "needs a string 'caption' and a list 'refs'")
            caption = body["caption"].strip('"').strip().lower()
            found: list[tuple[list[int], Segmentation, str | None]] = []
            for number, ref in enumerate(body["refs"]):
                at = f"{where} refs[{number}]"
                if not isinstance(ref, dict) or not isinstance(ref.get("sentence"), str) or "segmentation" not in ref:
                    raise _malformed(at, "needs a string 'sentence' and a 'segmentation'")
                sentence = ref["sentence"].lower()
                start = caption.find(sentence) if sentence else -1
                if start >= 0:
                    crop = _crop(ref.get("seg_img_path"), spec, root, at)
                    found.append(([start, start + len(sentence)], ref["segmentation"], crop))
            found.sort(key=lambda phrase: phrase[0][0])
            for i in range(len(found) - 1):  # a span that reaches the next one ends one character before it
                if found[i][0][1] >= found[i + 1][0][0]:
                    found[i][0][1] = found[i + 1][0][0] - 1
            phrases: list[Phrase] = []
            for span, segmentation, crop in found:
                if span[1] > span[0]:
                    phrases.append(((span[0], span[1]), segmentation, crop))
                else:
                    read.skip(RecordSkipped("phrase dropped: empty after overlap trimming", f"{where}: {span}"))
            _check_spans(caption, phrases, where)
        except RecordSkipped as error:
            read.skip(error)
            continue
        read.samples.append(_gcg_sample(spec, where, images / body["img_file_name"], caption, phrases, rng))
    return read


def _flickr_phrases(
    spec: SourceSpec, root: Path, path: Path, annotations: list[tuple[int, Any]], width: int, height: int
) -> list[Phrase]:
    phrases: list[Phrase] = []
    for number, annotation in annotations:
        at = f"{path} annotations[{number}]"
        if annotation.get("ignore", False):
            continue
        try:
            x, y, w, h = (float(v) for v in annotation["bbox"])
            area = float(annotation["area"])
            positives = annotation["tokens_positive"]
            mask = annotation["sam_mask"]
        except (KeyError, TypeError, ValueError):
            raise _malformed(at, "needs 'bbox' [x, y, w, h], 'area', 'tokens_positive' and 'sam_mask'") from None
        inter_w = max(0.0, min(x + w, width) - max(x, 0.0))
        inter_h = max(0.0, min(y + h, height) - max(y, 0.0))
        if inter_w * inter_h == 0 or area <= 0 or w < 1 or h < 1:
            continue
        if not isinstance(positives, list) or not positives:
            raise _malformed(at, "'tokens_positive' must be a non-empty list of spans")
        phrases.append((_span(positives[0], at), mask, _crop(annotation.get("seg_img_path"), spec, root, at)))
    return phrases


def read_flickr_gcg(spec: SourceSpec, root: Path, rng: random.Random) -> SourceRead:
    """Flickr30k-GCG (COCO format): `images[]` with `caption`, `annotations[]` with `tokens_positive`, `sam_mask`."""
    path = _resolve(root, spec.annotations)
    data = _read_json(path, "Flickr GCG annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"Flickr GCG annotation file {path}: expected a COCO object with 'images' and 'annotations'")
    by_image: dict[Any, list[tuple[int, Any]]] = {}
    for index, annotation in enumerate(data.get("annotations") or []):
        if isinstance(annotation, dict):
            by_image.setdefault(annotation.get("image_id"), []).append((index, annotation))
    images = _resolve(root, spec.images)
    read = SourceRead([], Counter(), {})
    for index, info in enumerate(data["images"]):
        where = f"{path} images[{index}]"
        try:
            if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("file_name", "caption")):
                raise _malformed(where, "needs string 'file_name' and 'caption'")
            try:
                width, height = int(info["width"]), int(info["height"])
            except (KeyError, TypeError, ValueError):
                raise _malformed(where, "needs integer 'width' and 'height'") from None
            caption = info["caption"]
            if len(caption.split(" ")) < 3:
                raise RecordSkipped("caption shorter than 3 words", f"{where}: {caption!r}")
            if min(width, height) < 32:
                raise RecordSkipped("image side under 32 px", f"{where}: {width}x{height}")
            phrases = _flickr_phrases(spec, root, path, by_image.get(info.get("id"), []), width, height)
            _check_spans(caption, phrases, where)
        except RecordSkipped as error:
            read.skip(error)
            continue
        read.samples.append(_gcg_sample(spec, where, images / info["file_name"], caption, phrases, rng))
    return read


READERS = {
    "llava": read_llava,
    "refcoco": read_refcoco,
    "grandf": read_grandf,
    "openpsg": read_grandf,
    "refcocog_gcg": read_refcocog_gcg,
    "flickr_gcg": read_flickr_gcg,
}


def read_source(spec: SourceSpec, root: Path, seed: int, copy: int) -> SourceRead:
    """The samples of one listing of `spec` (draws seeded by `seed`, the source name and `copy`)."""
    rng = random.Random(f"{seed}/{spec.name}/{copy}")
    return READERS[spec.format](spec, root, rng)


__all__ = ["READERS", "Grounding", "RawSample", "RecordSkipped", "SourceRead", "read_source"]
