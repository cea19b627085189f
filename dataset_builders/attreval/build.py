"""From REFER annotations to AttrEval items: verified attributes, question pairs and attribute-only expressions.

For every referred object of the chosen splits (`build_items`):

1. **Input checks.** A ref whose annotation or image is not in ``instances.json``, whose image file
   cannot be read (or has another size), whose category is unknown, or whose mask is unreadable or
   empty is skipped and counted by reason.
2. **Attributes.** Category and supercategory come from ``instances.json``. Colour, position and relation
   words come from the ref's expressions (`language.read_expression`) and are kept only when the pixels
   or boxes agree (`colors`, `scene`); every rejected word is counted by reason. An expression that
   says nothing about colour, position or relation is counted as such.
3. **QA track.** For the category and every kept attribute value, a pair of yes/no questions: the true
   value and a hard negative of the same family (same supercategory; a neighbouring colour absent from
   the mask; the opposite position or relation, checked false). The question's subject describes the
   object by its *other* attributes and must single it out (`Scene.singles_out`).
4. **Segmentation track.** An attribute-only expression per kept colour, position and relation value
   ("the red one", "the one on the left", "the one behind the car") that leaves out the category noun
   and singles the object out; a target with none gets the first two-attribute expression that does
   (type ``combined``).
5. **Duplicates** (same object, attribute and value; same object and expression) are removed, and each
   track is **balanced** per split: every attribute type is cut to the count of the rarest one (items
   kept by a seed-independent hash order).

Only hard negatives are drawn at random, each from its own generator seeded by the build seed and the
item's identity: another seed changes the negatives and nothing else.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from dataset_builders.attreval.colors import NEIGHBOURS, class_shares, classify_pixels, word_share
from dataset_builders.attreval.language import names_category, read_expression
from dataset_builders.attreval.scene import (
    IMAGE_POSITION_PHRASES,
    OPPOSITE_POSITIONS,
    OPPOSITE_RELATIONS,
    POSITION_PHRASES,
    RELATION_PHRASES,
    SUPERLATIVES,
    Description,
    Relation,
    Rules,
    Scene,
    SceneObject,
    render,
)
from dataset_builders.coco import COCO_CATEGORIES
from harness import masks
from harness.metrics.refseg import refer_target_mask
from harness.types import RLE
from tasks.loaders.refer import CocoImage, Instances, Ref, in_split

QA_TYPES: tuple[str, ...] = ("category", "color", "position", "relation")
SEG_TYPES: tuple[str, ...] = ("color", "position", "relation", "combined")
FALLBACK_FAMILIES: dict[str, str] = {"person": "animal"}
"""Supercategory with a single category -> the family its hard negatives come from."""

SUPERCATEGORY: dict[str, str] = {name: group for _, name, group in COCO_CATEGORIES}
COCO_BY_ID: dict[int, tuple[str, str]] = {category_id: (name, group) for category_id, name, group in COCO_CATEGORIES}

Balance = Literal["min", "none"]


@dataclass
class Tally:
    """Rejected candidates by (stage, reason), and kept attribute values by type."""

    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)

    def reject(self, stage: str, reason: str, count: int = 1) -> None:
        self.rejected[(stage, reason)] += count


@dataclass(frozen=True)
class Target:
    """A referred object with its verified attributes."""

    ref: Ref
    image: CocoImage
    obj: SceneObject
    mask: RLE
    colors: tuple[str, ...]
    positions: tuple[str, ...]
    relations: tuple[Relation, ...]
    said_colors: frozenset[str]

    def attributes(self, scene: Scene) -> dict[str, list[str]]:
        """Attribute type -> words (what the seg-token analysis looks for)."""
        return {
            "category": [self.obj.category],
            "supercategory": [self.obj.supercategory],
            "color": list(self.colors),
            "position": list(self.positions),
            "relation": [relation.word for relation in self.relations],
            "relation_object": [scene.get(relation.other).category for relation in self.relations],
        }


@dataclass(frozen=True)
class QAPair:
    """Two yes/no questions about one attribute value of one object (true value, hard negative)."""

    split: str
    target: Target
    attribute: str
    truth: str
    negative: str
    positive_question: str
    negative_question: str
    subject: str

    @property
    def key(self) -> str:
        return f"{self.target.ref.ref_id}:{self.attribute}:{self.truth.replace(' ', '_')}"


@dataclass(frozen=True)
class SegItem:
    """An attribute-only referring expression of one object."""

    split: str
    target: Target
    attribute: str
    expression: str
    description: Description
    attributes: dict[str, list[str]]


@dataclass
class Items:
    """Everything one build produces before writing."""

    qa: list[QAPair]
    seg: list[SegItem]
    scenes: dict[int, Scene]
    tally: Tally
    refs_seen: int
    images_seen: int


def _rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _stable(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------


def _category(instances: Instances, ann_id: int) -> tuple[str, str] | None:
    category = instances.category(ann_id)
    if category is not None:
        return category.name, category.supercategory or SUPERCATEGORY.get(category.name, "")
    annotation = instances.annotations.get(ann_id)
    if annotation is None or annotation.category_id is None:
        return None
    return COCO_BY_ID.get(annotation.category_id)


def _read_pixels(path: Path, image: CocoImage) -> tuple[np.ndarray | None, str | None]:
    try:
        with Image.open(path) as opened:
            pixels = np.asarray(opened.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, "image file cannot be read"
    if pixels.shape[:2] != (image.height, image.width):
        return None, "image size differs from instances.json"
    return pixels, None


def make_scene(
    image: CocoImage,
    pixels: np.ndarray,
    ann_ids: Sequence[int],
    instances: Instances,
    said_colors: dict[int, frozenset[str]],
    rules: Rules,
) -> tuple[Scene, dict[int, RLE], dict[int, str]]:
    """The image's objects with boxes and colour profiles; masks by annotation; why others were left out."""
    classes = classify_pixels(pixels)
    objects, target_masks, problems = [], {}, {}
    for ann_id in ann_ids:
        category = _category(instances, ann_id)
        if category is None:
            problems[ann_id] = "category unknown"
            continue
        try:
            mask = refer_target_mask(instances.segmentations[ann_id], image.height, image.width)
        except ValueError:
            problems[ann_id] = "segmentation cannot be read"
            continue
        decoded = masks.decode(mask)
        if not decoded.any():
            problems[ann_id] = "empty mask"
            continue
        annotation = instances.annotations.get(ann_id)
        box = annotation.bbox if annotation is not None and annotation.bbox is not None else None
        if box is None:
            native = {"size": mask["size"], "counts": mask["counts"].encode("ascii")}
            box = tuple(float(v) for v in coco_mask.toBbox(native))
        objects.append(
            SceneObject(
                ann_id=ann_id,
                category=category[0],
                supercategory=category[1],
                box=box,  # type: ignore[arg-type]
                shares=class_shares(classes, decoded),
                said_colors=said_colors.get(ann_id, frozenset()),
            )
        )
        target_masks[ann_id] = mask
    return Scene(image.width, image.height, tuple(objects), rules), target_masks, problems


# ---------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------


def verify_attributes(
    ref: Ref, obj: SceneObject, scene: Scene, tally: Tally
) -> tuple[list[str], list[str], list[Relation], set[str]]:
    """Kept colours, positions and relations of one ref, and every colour word its expressions use."""
    said: set[str] = set()
    colors: list[str] = []
    positions: list[str] = []
    relations: list[Relation] = []
    tried: set[tuple[str, Any]] = set()
    same_category = [other for other in scene.objects if other.category == obj.category]
    for sentence in ref.sentences:
        mentions = read_expression(sentence.sent, obj.category)
        if mentions.empty:
            tally.reject("expression", "no colour, position or relation word about the target")
            continue
        said.update(mentions.colors)
        for color in mentions.colors:
            if ("color", color) in tried:
                continue
            tried.add(("color", color))
            if word_share(obj.shares, color) >= scene.rules.min_color_share:
                colors.append(color)
            else:
                tally.reject("color", "not among the mask's dominant colours")
        for position in mentions.positions:
            if ("position", position) in tried:
                continue
            tried.add(("position", position))
            if scene.position_holds(obj, position, same_category):
                positions.append(position)
            elif position in ("front", "back") and len(same_category) < 2:
                tally.reject("position", "front/back of a lone object cannot be judged")
            else:
                tally.reject("position", "not confirmed by the box")
        if mentions.dangling_relation is not None:
            tally.reject("relation", "no COCO object named after the relation word")
        mention = mentions.relation
        if mention is None:
            continue
        others = [o for o in scene.objects if o.ann_id != obj.ann_id and o.category in mention.categories]
        key = ("relation", (mention.relation, tuple(o.ann_id for o in others)))
        if key in tried:
            continue
        tried.add(key)
        if mention.relation == "between":
            tally.reject("relation", "'between' is not supported")
        elif not others:
            tally.reject("relation", "the object it points to is not annotated in the image")
        elif len(others) > 1:
            tally.reject("relation", "the object it points to is not unique in its category")
        elif scene.relation_holds(obj, others[0], mention.relation) is False:
            tally.reject("relation", "contradicted by the boxes")
        else:
            relations.append(Relation(mention.relation, others[0].ann_id))
    return colors, positions, relations, said


# ---------------------------------------------------------------------------
# QA track
# ---------------------------------------------------------------------------


def _subjects(target: Target, asked: str) -> Iterator[Description]:
    """Candidate subjects for a question about ``asked``, simplest first, never using ``asked``."""
    with_category = asked != "category"
    base = Description(category=target.obj.category if with_category else None)
    options: dict[str, list[Description]] = {
        "color": [replace(base, color=c) for c in target.colors] if asked != "color" else [],
        "position": [replace(base, position=p) for p in target.positions] if asked != "position" else [],
        "relation": [replace(base, relation=r) for r in target.relations] if asked != "relation" else [],
    }
    if with_category:
        yield base
    for kind in ("color", "position", "relation"):
        yield from options[kind]
    for first, second in itertools.combinations(("color", "position", "relation"), 2):
        for one, two in itertools.product(options[first], options[second]):
            yield Description(
                category=base.category,
                color=one.color or two.color,
                position=one.position or two.position,
                relation=one.relation or two.relation,
            )


def find_subject(target: Target, asked: str, scene: Scene) -> str | None:
    """The simplest description without ``asked`` that singles the target out, rendered; else ``None``."""
    for description in _subjects(target, asked):
        if scene.singles_out(target.obj, description) is None:
            return render(description, scene)
    return None


def _position_phrasing(target: Target, scene: Scene, position: str) -> tuple[bool, list[SceneObject]]:
    """(relative to same-category objects?, those objects)."""
    same = [obj for obj in scene.objects if obj.category == target.obj.category]
    return position in SUPERLATIVES and len(same) >= 2, same


def _position_true(scene: Scene, target: Target, word: str, relative: bool, same: list[SceneObject]) -> bool:
    if relative:
        return scene.position_holds(target.obj, word, same)
    return scene.predicate(target.obj, word) if word in ("edge", "corner") else scene.in_image(target.obj, word)


def negative_candidates(target: Target, attribute: str, value: str, scene: Scene) -> list[str]:
    """Hard negatives of ``value`` (each false for the target), nearest family first."""
    if attribute == "category":
        group = target.obj.supercategory
        family = [name for _, name, sup in COCO_CATEGORIES if sup == group and name != value]
        if not family and group in FALLBACK_FAMILIES:
            family = [name for _, name, sup in COCO_CATEGORIES if sup == FALLBACK_FAMILIES[group]]
        return sorted(family)
    if attribute == "color":

        def absent(word: str) -> bool:
            return (
                word != value
                and word not in target.said_colors
                and word_share(target.obj.shares, word) < scene.rules.max_negative_share
            )

        ring = [word for word in NEIGHBOURS[value] if absent(word)]
        if ring:
            return ring
        second = dict.fromkeys(word for first in NEIGHBOURS[value] for word in NEIGHBOURS[first])
        return [word for word in second if word not in NEIGHBOURS[value] and absent(word)]
    if attribute == "position":
        relative, same = _position_phrasing(target, scene, value)
        return [word for word in OPPOSITE_POSITIONS[value] if not _position_true(scene, target, word, relative, same)]
    relation = next(r for r in target.relations if r.word == value)
    opposite = OPPOSITE_RELATIONS.get(value)
    if opposite is None:
        return []
    holds = scene.relation_holds(target.obj, scene.get(relation.other), opposite)
    return [] if holds else [opposite]


def question(target: Target, attribute: str, value: str, subject: str, scene: Scene, truth: str) -> str:
    """``Is <subject> <value>? Answer yes or no.`` for one attribute type."""
    if attribute == "category":
        predicate = f"{_article(value)} {value}"
    elif attribute == "color":
        predicate = value
    elif attribute == "position":
        relative, _ = _position_phrasing(target, scene, truth)
        predicate = (
            f"the {target.obj.category} {POSITION_PHRASES[value]}" if relative else IMAGE_POSITION_PHRASES[value]
        )
    else:
        relation = next(r for r in target.relations if r.word == truth)
        predicate = f"{RELATION_PHRASES[value]} the {scene.get(relation.other).category}"
    return f"Is {subject} {predicate}? Answer yes or no."


def qa_pairs(target: Target, split: str, scene: Scene, seed: int, tally: Tally) -> list[QAPair]:
    """Question pairs for the category and every kept attribute value of ``target``."""
    values = [("category", target.obj.category)]
    values += [("color", c) for c in target.colors]
    values += [("position", p) for p in target.positions]
    values += [("relation", r.word) for r in target.relations]
    pairs = []
    for attribute, truth in values:
        subject = find_subject(target, attribute, scene)
        if subject is None:
            tally.reject("qa", "no description without the attribute singles the object out")
            continue
        candidates = negative_candidates(target, attribute, truth, scene)
        if not candidates:
            tally.reject("qa", "no hard negative that is false for the object")
            continue
        key = f"{target.ref.ref_id}:{attribute}:{truth}"
        negative = str(candidates[int(_rng(seed, key).integers(len(candidates)))])
        pairs.append(
            QAPair(
                split=split,
                target=target,
                attribute=attribute,
                truth=truth,
                negative=negative,
                positive_question=question(target, attribute, truth, subject, scene, truth),
                negative_question=question(target, attribute, negative, subject, scene, truth),
                subject=subject,
            )
        )
    return pairs


# ---------------------------------------------------------------------------
# Segmentation track
# ---------------------------------------------------------------------------


def _expression_problem(target: Target, description: Description, scene: Scene) -> str | None:
    text = render(description, scene)
    if names_category(text, target.obj.category):
        return "names the target's category"
    return scene.singles_out(target.obj, description)


def seg_items(target: Target, split: str, scene: Scene, tally: Tally) -> list[SegItem]:
    """Attribute-only expressions of ``target`` that single it out (a combined one when no single one does)."""
    singles = [("color", Description(color=c)) for c in target.colors]
    singles += [("position", Description(position=p)) for p in target.positions]
    singles += [("relation", Description(relation=r)) for r in target.relations]
    attributes = target.attributes(scene)
    found = []
    for attribute, description in singles:
        problem = _expression_problem(target, description, scene)
        if problem is None:
            found.append(SegItem(split, target, attribute, render(description, scene), description, attributes))
        else:
            tally.reject("seg", problem)
    if found or len({kind for kind, _ in singles}) < 2:
        return found
    for (kind_a, a), (kind_b, b) in itertools.combinations(singles, 2):
        if kind_a == kind_b:
            continue
        combined = Description(
            color=a.color or b.color, position=a.position or b.position, relation=a.relation or b.relation
        )
        if _expression_problem(target, combined, scene) is None:
            return [SegItem(split, target, "combined", render(combined, scene), combined, attributes)]
    tally.reject("seg", "no two-attribute expression singles the object out either")
    return []


# ---------------------------------------------------------------------------
# The whole build
# ---------------------------------------------------------------------------


def build_items(
    refs: Sequence[Ref],
    instances: Instances,
    image_folder: Path,
    splits: Sequence[str],
    *,
    seed: int,
    rules: Rules,
    balance: Balance = "min",
) -> Items:
    """Every QA pair and seg expression of ``splits`` (see the module docstring for the steps)."""
    tally = Tally()
    chosen = sorted(
        ((split, ref) for ref in refs for split in splits if in_split(ref.split, split)),
        key=lambda item: (splits.index(item[0]), item[1].image_id, item[1].ref_id),
    )
    said_colors: dict[int, set[str]] = defaultdict(set)
    for ref in refs:
        category = _category(instances, ref.ann_id)
        if category is not None:
            for sentence in ref.sentences:
                said_colors[ref.ann_id].update(read_expression(sentence.sent, category[0]).colors)
    frozen_said = {ann_id: frozenset(words) for ann_id, words in said_colors.items()}
    by_image: dict[int, list[int]] = defaultdict(list)
    for annotation in instances.annotations.values():
        by_image[annotation.image_id].append(annotation.id)

    qa: list[QAPair] = []
    seg: list[SegItem] = []
    scenes: dict[int, Scene] = {}
    made: dict[int, tuple[dict[int, RLE], dict[int, str]]] = {}
    images_seen = 0
    for (split, image_id), group in itertools.groupby(chosen, key=lambda item: (item[0], item[1].image_id)):
        group = list(group)
        image = instances.images.get(image_id)
        if image is None:
            tally.reject("input", "image not listed in instances.json", len(group))
            continue
        present = [(s, ref) for s, ref in group if ref.ann_id in instances.segmentations]
        if len(present) < len(group):
            tally.reject("input", "annotation missing from instances.json", len(group) - len(present))
        if not present:
            continue
        pixels, problem = _read_pixels(image_folder / image.file_name, image)
        if pixels is None:
            tally.reject("input", problem or "image file cannot be read", len(present))
            continue
        images_seen += 1
        if image_id not in scenes:
            scene, object_masks, problems = make_scene(
                image, pixels, sorted(by_image[image_id]), instances, frozen_said, rules
            )
            scenes[image_id], made[image_id] = scene, (object_masks, problems)
        scene, (scene_masks, scene_problems) = scenes[image_id], made[image_id]
        for _, ref in present:
            if ref.ann_id in scene_problems:
                tally.reject("input", scene_problems[ref.ann_id])
                continue
            obj = scene.get(ref.ann_id)
            colors, positions, relations, said = verify_attributes(ref, obj, scene, tally)
            target = Target(
                ref=ref,
                image=image,
                obj=obj,
                mask=scene_masks[ref.ann_id],
                colors=tuple(colors),
                positions=tuple(positions),
                relations=tuple(relations),
                said_colors=frozenset(said) | obj.said_colors,
            )
            tally.kept.update(
                ["category"] + ["color"] * len(colors) + ["position"] * len(positions) + ["relation"] * len(relations)
            )
            qa.extend(qa_pairs(target, split, scene, seed, tally))
            seg.extend(seg_items(target, split, scene, tally))

    qa = _deduplicate(qa, lambda p: (p.split, p.target.obj.ann_id, p.attribute, p.truth), tally, "qa")
    seg = _deduplicate(seg, lambda s: (s.split, s.target.obj.ann_id, s.expression), tally, "seg")
    if balance == "min":
        qa = _balance(qa, QA_TYPES, QA_TYPES, lambda p: p.key, tally, "qa")
        seg = _balance(seg, SEG_TYPES, SEG_TYPES[:3], lambda s: f"{s.target.ref.ref_id}:{s.expression}", tally, "seg")
    return Items(qa, seg, scenes, tally, refs_seen=len(chosen), images_seen=images_seen)


def _deduplicate(items: list, key: Any, tally: Tally, stage: str) -> list:
    seen: set[Any] = set()
    kept = []
    for item in items:
        identity = key(item)
        if identity in seen:
            tally.reject(stage, "duplicate")
            continue
        seen.add(identity)
        kept.append(item)
    return kept


def _balance(items: list, types: Sequence[str], base: Sequence[str], key: Any, tally: Tally, stage: str) -> list:
    """Per split, cut every attribute type to the count of the rarest of ``base`` present (hash order)."""
    kept_ids: set[int] = set()
    for split in dict.fromkeys(item.split for item in items):
        of_split = [item for item in items if item.split == split]
        counts = Counter(item.attribute for item in of_split)
        present = [counts[name] for name in base if counts[name]]
        cap = min(present) if present else 0
        for name in types:
            chosen = sorted((item for item in of_split if item.attribute == name), key=lambda i: _stable(key(i)))
            kept_ids.update(id(item) for item in chosen[:cap])
            if len(chosen) > cap:
                tally.reject(stage, "dropped to balance the attribute types", len(chosen) - cap)
    return [item for item in items if id(item) in kept_ids]


__all__ = [
    "QA_TYPES",
    "SEG_TYPES",
    "Items",
    "QAPair",
    "SegItem",
    "Tally",
    "Target",
    "build_items",
    "find_subject",
    "make_scene",
    "negative_candidates",
    "qa_pairs",
    "seg_items",
    "verify_attributes",
]
