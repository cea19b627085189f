"""The objects of one image and what can be said about them: positions, relations, and whether a
description singles one object out (the ambiguity filter).

Geometry uses each annotation's box ``(x, y, w, h)`` with y growing downwards; ``cx``/``cy`` are its
centre. `Rules` holds every threshold (recorded in ``build.json`` and the datasheet).

**Positions** (left, right, top, bottom, center, front, back: superlatives; edge, corner: predicates).
A position is judged within a *comparison set*: the objects a description could mean (same category
for a referring expression's own words; all objects matching the other words for an attribute-only
expression). With two or more objects in the set it is a superlative with a margin: *left* = smallest
``cx`` by at least ``margin`` x width before the next, *right* = largest ``cx``, *top* / *bottom* =
smallest / largest ``cy`` (margin x height), *front* / *back* = largest / smallest box bottom (nearer
the camera is lower in the picture), *center* = ``cx`` closest to the image's centre line by the
margin and inside the middle third. A lone object is judged against the image: *left* ``cx < 0.45 W``,
*right* ``cx > 0.55 W``, *top* ``cy < 0.45 H``, *bottom* ``cy > 0.55 H``, *center* ``W/3 <= cx <= 2W/3``;
*front* and *back* cannot be judged. *edge*: the box touches a border (within 1 % of the side);
*corner*: it touches a vertical and a horizontal border.

**Relations** to another object O: *above*/*over*: ``cy < cy(O)``; *below*/*under*: ``cy > cy(O)``;
*near*, *beside*, *next to*, *adjacent*, *alongside*: the gap between the boxes is at most
``near_factor`` x the larger mean box side; *far*: not near; *inside*/*within*: at least 80 % of the
box inside O's; *outside*: at most 20 %; *surrounding*: O's box at least 80 % inside. *behind*,
*in front of* and *opposite* (depth) cannot be judged from boxes: taken from the expression for the
target, and assumed possible for any other object near O.

**Colours**: an object has a colour word when at least ``min_color_share`` of its mask's pixels fall in
the word's family (`colors.FAMILIES`), or when one of its own referring expressions uses the word.

**Ambiguity filter**: a description (category? colour? position? relation?) singles out the target when
no other object of the image matches its category, colour and relation, or, with a position, when the
position holds for the target within the set of objects that match the rest (a superlative picks one
object by construction; a predicate must hold for the target only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dataset_builders.attreval.colors import word_share

POSITION_PHRASES: dict[str, str] = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the middle",
    "front": "in the front",
    "back": "at the back",
    "edge": "at the edge",
    "corner": "in the corner",
}
"""Position word -> phrase after a noun ("the one on the left")."""

IMAGE_POSITION_PHRASES: dict[str, str] = {
    "left": "on the left side of the image",
    "right": "on the right side of the image",
    "top": "at the top of the image",
    "bottom": "at the bottom of the image",
    "center": "in the middle of the image",
    "edge": "at the edge of the image",
    "corner": "in a corner of the image",
}
"""Position word -> predicate about a lone object's place in the image."""

RELATION_PHRASES: dict[str, str] = {
    "above": "above",
    "below": "below",
    "beside": "beside",
    "behind": "behind",
    "in front of": "in front of",
    "next to": "next to",
    "near": "near",
    "far": "far from",
    "over": "over",
    "under": "under",
    "inside": "inside",
    "outside": "outside",
    "adjacent": "adjacent to",
    "opposite": "opposite",
    "surrounding": "surrounding",
    "within": "within",
    "alongside": "alongside",
}
"""Relation word -> the words before the related object ("far from the car")."""

OPPOSITE_POSITIONS: dict[str, tuple[str, ...]] = {
    "left": ("right",),
    "right": ("left",),
    "top": ("bottom",),
    "bottom": ("top",),
    "front": ("back",),
    "back": ("front",),
    "center": ("left", "right"),
    "edge": ("center",),
    "corner": ("center",),
}
"""Position word -> its opposites (hard negatives; each must be false for the target)."""

OPPOSITE_RELATIONS: dict[str, str] = {
    "above": "below",
    "below": "above",
    "over": "under",
    "under": "over",
    "behind": "in front of",
    "in front of": "behind",
    "inside": "outside",
    "within": "outside",
    "outside": "inside",
    "near": "far",
    "beside": "far",
    "next to": "far",
    "adjacent": "far",
    "alongside": "far",
    "far": "near",
    "surrounding": "inside",
}
"""Relation word -> its opposite (hard negative). ``opposite`` and ``between`` have none."""

DEPTH_RELATIONS = frozenset({"behind", "in front of", "opposite"})
NEAR_RELATIONS = frozenset({"near", "beside", "next to", "adjacent", "alongside"})
SUPERLATIVES = frozenset({"left", "right", "top", "bottom", "center", "front", "back"})


@dataclass(frozen=True)
class Rules:
    """Thresholds of the attribute checks (fractions of the image side unless stated)."""

    min_color_share: float = 0.10
    """Share of mask pixels a colour word's family needs to confirm the word."""
    max_negative_share: float = 0.05
    """Largest share of mask pixels a hard-negative colour may have."""
    margin: float = 0.05
    """Lead a superlative position needs over the next object."""
    side: float = 0.45
    """A lone object is left of ``side`` x W (right of (1 - side) x W; same for top and bottom)."""
    border: float = 0.01
    """A box within this of a border touches it."""
    near_factor: float = 0.5
    """Near: box gap at most this times the larger mean box side."""
    inside: float = 0.8
    outside: float = 0.2


@dataclass(frozen=True)
class SceneObject:
    """An annotated object: its category, box and colour profile."""

    ann_id: int
    category: str
    supercategory: str
    box: tuple[float, float, float, float]
    shares: dict[str, float] = field(default_factory=dict)
    said_colors: frozenset[str] = frozenset()
    """Colour words its own referring expressions use (any split)."""

    @property
    def cx(self) -> float:
        return self.box[0] + self.box[2] / 2

    @property
    def cy(self) -> float:
        return self.box[1] + self.box[3] / 2

    @property
    def bottom(self) -> float:
        return self.box[1] + self.box[3]


@dataclass(frozen=True)
class Relation:
    """A relation word and the object (annotation id) it points to."""

    word: str
    other: int


@dataclass(frozen=True)
class Description:
    """What an expression or a question's subject says: any of category, colour, position, relation."""

    category: str | None = None
    color: str | None = None
    position: str | None = None
    relation: Relation | None = None

    @property
    def types(self) -> tuple[str, ...]:
        """The attribute types used, in the order category, color, position, relation."""
        return tuple(
            name
            for name, value in (
                ("category", self.category),
                ("color", self.color),
                ("position", self.position),
                ("relation", self.relation),
            )
            if value is not None
        )


@dataclass(frozen=True)
class Scene:
    """One image: its size and every annotated object."""

    width: int
    height: int
    objects: tuple[SceneObject, ...]
    rules: Rules = Rules()

    def get(self, ann_id: int) -> SceneObject:
        return next(obj for obj in self.objects if obj.ann_id == ann_id)

    # -- colours --------------------------------------------------------------------------------

    def has_color(self, obj: SceneObject, word: str) -> bool:
        return word_share(obj.shares, word) >= self.rules.min_color_share or word in obj.said_colors

    # -- positions ------------------------------------------------------------------------------

    def touches(self, obj: SceneObject) -> tuple[bool, bool]:
        """(touches the left or right border, touches the top or bottom border)."""
        x, y, w, h = obj.box
        bx, by = self.rules.border * self.width, self.rules.border * self.height
        return x <= bx or x + w >= self.width - bx, y <= by or y + h >= self.height - by

    def predicate(self, obj: SceneObject, word: str) -> bool:
        """``edge`` and ``corner``."""
        sides = self.touches(obj)
        return any(sides) if word == "edge" else all(sides)

    def in_image(self, obj: SceneObject, word: str) -> bool:
        """A lone object's position in the image (front and back cannot be judged)."""
        side = self.rules.side
        return {
            "left": obj.cx < side * self.width,
            "right": obj.cx > (1 - side) * self.width,
            "top": obj.cy < side * self.height,
            "bottom": obj.cy > (1 - side) * self.height,
            "center": self.width / 3 <= obj.cx <= 2 * self.width / 3,
        }.get(word, False)

    def _value(self, obj: SceneObject, word: str) -> float:
        """The quantity a superlative ranks on; the target must have the smallest."""
        return {
            "left": obj.cx,
            "right": -obj.cx,
            "top": obj.cy,
            "bottom": -obj.cy,
            "front": -obj.bottom,
            "back": obj.bottom,
            "center": abs(obj.cx - self.width / 2),
        }[word]

    def superlative(self, target: SceneObject, word: str, members: Iterable[SceneObject]) -> bool:
        """``target`` is the ``word``-most of ``members`` by the margin (center: also in the middle third)."""
        scale = self.height if word in ("top", "bottom", "front", "back") else self.width
        own = self._value(target, word)
        rivals = [self._value(obj, word) for obj in members if obj.ann_id != target.ann_id]
        if rivals and min(rivals) - own < self.rules.margin * scale:
            return False
        return word != "center" or self.in_image(target, "center")

    def position_holds(self, target: SceneObject, word: str, members: list[SceneObject]) -> bool:
        """``word`` is true of ``target`` within the comparison set ``members`` (which includes it)."""
        if word in ("edge", "corner"):
            return self.predicate(target, word)
        if len(members) >= 2:
            return self.superlative(target, word, members)
        return self.in_image(target, word)

    # -- relations ------------------------------------------------------------------------------

    def near(self, first: SceneObject, second: SceneObject) -> bool:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = first.box, second.box
        gap_x = max(0.0, max(x1, x2) - min(x1 + w1, x2 + w2))
        gap_y = max(0.0, max(y1, y2) - min(y1 + h1, y2 + h2))
        side = max((w1 + h1) / 2, (w2 + h2) / 2)
        return (gap_x**2 + gap_y**2) ** 0.5 <= self.rules.near_factor * side

    @staticmethod
    def _inside_share(inner: SceneObject, outer: SceneObject) -> float:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = inner.box, outer.box
        overlap_w = max(0.0, min(x1 + w1, x2 + w2) - max(x1, x2))
        overlap_h = max(0.0, min(y1 + h1, y2 + h2) - max(y1, y2))
        return overlap_w * overlap_h / (w1 * h1) if w1 * h1 > 0 else 0.0

    def relation_holds(self, obj: SceneObject, other: SceneObject, word: str) -> bool | None:
        """Whether ``obj`` is ``word`` ``other`` by the boxes; ``None`` for depth relations (cannot tell)."""
        if word in DEPTH_RELATIONS:
            return None
        if word in ("above", "over"):
            return obj.cy < other.cy
        if word in ("below", "under"):
            return obj.cy > other.cy
        if word in NEAR_RELATIONS:
            return self.near(obj, other)
        if word == "far":
            return not self.near(obj, other)
        if word in ("inside", "within"):
            return self._inside_share(obj, other) >= self.rules.inside
        if word == "outside":
            return self._inside_share(obj, other) <= self.rules.outside
        if word == "surrounding":
            return self._inside_share(other, obj) >= self.rules.inside
        raise ValueError(f"relation {word!r} cannot be judged")

    def could_relate(self, obj: SceneObject, relation: Relation) -> bool:
        """Whether another object could be described by ``relation`` (depth relations: when near the object)."""
        if obj.ann_id == relation.other:
            return False
        other = self.get(relation.other)
        holds = self.relation_holds(obj, other, relation.word)
        return self.near(obj, other) if holds is None else holds

    # -- descriptions ---------------------------------------------------------------------------

    def _matches(self, obj: SceneObject, description: Description) -> bool:
        """Category, colour and relation of ``description`` fit ``obj`` (positions are judged on the set)."""
        if description.category is not None and obj.category != description.category:
            return False
        if description.color is not None and not self.has_color(obj, description.color):
            return False
        return description.relation is None or self.could_relate(obj, description.relation)

    def singles_out(self, target: SceneObject, description: Description) -> str | None:
        """``None`` when ``description`` (true of ``target``) picks it out; else why not.

        Reasons: ``"ambiguous"`` (another object fits as well) or ``"position does not pick the target"``.
        """
        members = [target] + [
            obj for obj in self.objects if obj.ann_id != target.ann_id and self._matches(obj, description)
        ]
        word = description.position
        if word is None:
            return None if len(members) == 1 else "ambiguous"
        if word in ("edge", "corner"):
            if not self.predicate(target, word):
                return "position does not pick the target"
            others = [obj for obj in members[1:] if self.predicate(obj, word)]
            return "ambiguous" if others else None
        return None if self.position_holds(target, word, members) else "position does not pick the target"


def render(description: Description, scene: Scene) -> str:
    """``Description(color="red", position="left")`` -> ``"the red one on the left"``."""
    words = ["the"]
    if description.color:
        words.append(description.color)
    words.append(description.category or "one")
    if description.position:
        words.append(POSITION_PHRASES[description.position])
    if description.relation:
        other = scene.get(description.relation.other)
        words.append(f"{RELATION_PHRASES[description.relation.word]} the {other.category}")
    return " ".join(words)


__all__ = [
    "DEPTH_RELATIONS",
    "IMAGE_POSITION_PHRASES",
    "OPPOSITE_POSITIONS",
    "OPPOSITE_RELATIONS",
    "POSITION_PHRASES",
    "RELATION_PHRASES",
    "SUPERLATIVES",
    "Description",
    "Relation",
    "Rules",
    "Scene",
    "SceneObject",
    "render",
]
