"""Reading referring expressions: category nouns, and the colour, position and relation words about the target.

Expressions are read from REFER's normalised ``sent`` (lower case), split into word tokens. Rules (the
datasheet repeats them):

- **Colour**: a colour word (LIRA's 14, ``grey`` = gray, ``golden`` = gold) describes the target when it
  stands in the expression's head phrase, i.e. before the first `BREAKERS` word ("*red* cup in the
  middle", not "bike with the *black* seat"). For people it may also follow ``in`` / ``wearing``
  ("man in *black* coat"), as RefCOCO describes people by their clothes. The target's own category
  noun is never a colour ("orange" the fruit).
- **Position**: a position word (`POSITION_WORDS`: LIRA's positions and common synonyms such as
  ``middle`` -> center, ``upper`` -> top; not ``up``/``down``, mostly verb particles) anywhere before the
  first relation phrase, unless ``of`` follows it ("*left* of the car", "*top* of the shelf" describe
  something else).
- **Relation**: the first relation phrase (`RELATION_PHRASES`: LIRA's relations and synonyms such as
  ``close to`` -> near) followed, within `OBJECT_WINDOW` words, by a category noun: the object it points
  to. ``far left`` is no relation: no object follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dataset_builders.coco import COCO_CATEGORIES

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

COLOR_WORDS: dict[str, str] = {
    **{word: word for word in ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "cyan")},
    **{word: word for word in ("silver", "gold", "gray", "white", "black")},
    "grey": "gray",
    "golden": "gold",
}
"""Token -> colour word (LIRA's colour list, lower case)."""

POSITION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left",),
    "leftmost": ("left",),
    "west": ("left",),
    "right": ("right",),
    "rightmost": ("right",),
    "east": ("right",),
    "top": ("top",),
    "upper": ("top",),
    "topmost": ("top",),
    "north": ("top",),
    "bottom": ("bottom",),
    "lower": ("bottom",),
    "bottommost": ("bottom",),
    "south": ("bottom",),
    "northeast": ("top", "right"),
    "northwest": ("top", "left"),
    "southeast": ("bottom", "right"),
    "southwest": ("bottom", "left"),
    "center": ("center",),
    "centre": ("center",),
    "middle": ("center",),
    "central": ("center",),
    "front": ("front",),
    "back": ("back",),
    "edge": ("edge",),
    "corner": ("corner",),
}
"""Token -> canonical position words (LIRA's positions, lower case; compass words map to image sides)."""

POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "center", "front", "back", "edge", "corner")

RELATION_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("in", "front", "of"), "in front of"),
    (("on", "top", "of"), "above"),
    (("next", "to"), "next to"),
    (("close", "to"), "near"),
    (("near", "to"), "near"),
    (("far", "from"), "far"),
    (("adjacent", "to"), "adjacent"),
    (("above",), "above"),
    (("below",), "below"),
    (("beneath",), "below"),
    (("underneath",), "under"),
    (("under",), "under"),
    (("over",), "over"),
    (("beside",), "beside"),
    (("behind",), "behind"),
    (("near",), "near"),
    (("far",), "far"),
    (("inside",), "inside"),
    (("within",), "within"),
    (("outside",), "outside"),
    (("opposite",), "opposite"),
    (("surrounding",), "surrounding"),
    (("alongside",), "alongside"),
    (("adjacent",), "adjacent"),
    (("between",), "between"),
)
"""Token sequences (longest first) -> relation word (LIRA's relations, lower case)."""

BREAKERS: frozenset[str] = frozenset(
    {
        "with", "in", "on", "of", "at", "wearing", "holding", "near", "next", "behind", "under", "above",
        "below", "beside", "by", "that", "who", "which", "and", "to", "from", "between", "over", "inside",
        "outside", "has", "having", "is", "are", "carrying", "eating", "sitting", "standing", "looking",
        "facing", "riding", "beneath", "underneath", "opposite", "within", "alongside", "surrounding", "far",
    }
)  # fmt: skip
"""Words that end an expression's head phrase."""

CLOTHING_LEADS: frozenset[str] = frozenset({"in", "wearing"})
"""Words after which a person's colour words still describe that person (their clothes)."""

OBJECT_WINDOW = 5
"""Tokens after a relation phrase searched for the category noun it points to."""

SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": (
        "man", "woman", "guy", "lady", "boy", "girl", "kid", "child", "baby", "player", "people", "gentleman",
        "dude", "adult", "skier", "surfer", "batter", "catcher", "umpire", "men", "women", "children", "kids",
        "guys", "ladies", "boys", "girls", "persons",
    ),
    "bicycle": ("bike", "cycle"),
    "car": ("taxi", "cab", "suv"),
    "motorcycle": ("motorbike", "bike", "moped", "scooter"),
    "airplane": ("plane", "aeroplane", "jet", "aircraft"),
    "truck": ("lorry", "pickup"),
    "boat": ("ship", "canoe", "kayak"),
    "fire hydrant": ("hydrant",),
    "parking meter": ("meter",),
    "cat": ("kitty", "kitten"),
    "dog": ("puppy", "pup"),
    "horse": ("pony",),
    "sheep": ("lamb",),
    "cow": ("cattle", "bull", "calf"),
    "handbag": ("purse", "bag"),
    "suitcase": ("luggage",),
    "skis": ("ski",),
    "sports ball": ("ball",),
    "baseball bat": ("bat",),
    "baseball glove": ("glove", "mitt"),
    "surfboard": ("board",),
    "tennis racket": ("racket", "racquet"),
    "wine glass": ("glass", "wineglass"),
    "cup": ("mug",),
    "hot dog": ("hotdog",),
    "donut": ("doughnut",),
    "couch": ("sofa",),
    "potted plant": ("plant",),
    "dining table": ("table",),
    "tv": ("television", "monitor", "screen", "tvmonitor"),
    "laptop": ("computer",),
    "remote": ("controller",),
    "cell phone": ("phone", "cellphone"),
    "oven": ("stove",),
    "refrigerator": ("fridge",),
    "teddy bear": ("teddy",),
    "hair drier": ("hair dryer", "dryer"),
}  # fmt: skip
"""COCO category -> other nouns RefCOCO annotators use for it (besides the name and its plural)."""

IRREGULAR_PLURALS = {"knife": "knives", "mouse": "mice", "sheep": "sheep", "skis": "skis", "person": "people"}


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of an expression."""
    return TOKEN.findall(text.lower())


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last in IRREGULAR_PLURALS:
        word = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "sh", "ch", "x")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def _lexicon() -> dict[tuple[str, ...], tuple[str, ...]]:
    found: dict[tuple[str, ...], list[str]] = {}
    for _, name, _ in COCO_CATEGORIES:
        for noun in (name, *SYNONYMS.get(name, ())):
            for form in (noun, _plural(noun)):
                key = tuple(form.split())
                if name not in found.setdefault(key, []):
                    found[key].append(name)
    return {key: tuple(names) for key, names in found.items()}


CATEGORY_NOUNS: dict[tuple[str, ...], tuple[str, ...]] = _lexicon()
"""Token sequence -> the COCO categories it can name (``bike`` names bicycle and motorcycle)."""
_LONGEST_NOUN = max(len(key) for key in CATEGORY_NOUNS)


def category_at(words: list[str], start: int) -> tuple[tuple[str, ...], int] | None:
    """The categories named by the longest noun starting at ``words[start]``, and its length."""
    for length in range(min(_LONGEST_NOUN, len(words) - start), 0, -1):
        names = CATEGORY_NOUNS.get(tuple(words[start : start + length]))
        if names:
            return names, length
    return None


def names_category(text: str, category: str) -> bool:
    """Whether ``text`` contains a noun for ``category`` (its name, a synonym or a plural)."""
    words = tokens(text)
    return any(category in found[0] for i in range(len(words)) if (found := category_at(words, i)))


def relation_at(words: list[str], start: int) -> tuple[str, int] | None:
    """The relation word of the phrase starting at ``words[start]``, and the phrase's length."""
    for phrase, relation in RELATION_PHRASES:
        if tuple(words[start : start + len(phrase)]) == phrase:
            return relation, len(phrase)
    return None


@dataclass(frozen=True)
class RelationMention:
    """A relation phrase and the categories the noun after it can name."""

    relation: str
    categories: tuple[str, ...]
    noun: str


@dataclass(frozen=True)
class Mentions:
    """What one expression says about its target."""

    colors: tuple[str, ...]
    positions: tuple[str, ...]
    relation: RelationMention | None
    """The first relation phrase with an object noun after it."""
    dangling_relation: str | None
    """A relation phrase with no category noun after it (e.g. "under the saucer": no COCO noun)."""

    @property
    def empty(self) -> bool:
        return not (self.colors or self.positions or self.relation or self.dangling_relation)


def _first_relation(words: list[str]) -> tuple[int, RelationMention | None, str | None]:
    """(index of the first relation phrase or len(words), the mention, a dangling relation word)."""
    for index in range(len(words)):
        found = relation_at(words, index)
        if found is None:
            continue
        relation, length = found
        for offset in range(index + length, min(len(words), index + length + OBJECT_WINDOW)):
            if offset > index + length and relation_at(words, offset) is not None:
                break
            noun = category_at(words, offset)
            if noun is not None:
                names, size = noun
                return index, RelationMention(relation, names, " ".join(words[offset : offset + size])), None
        if relation == "far" and index + length < len(words) and words[index + length] in POSITION_WORDS:
            continue  # "far left": a position, not a relation
        return index, None, relation
    return len(words), None, None


def read_expression(text: str, category: str) -> Mentions:
    """The colour, position and relation words an expression says about its target of ``category``."""
    words = tokens(text)
    own = {i for i in range(len(words)) if (found := category_at(words, i)) and category in found[0]}
    head_end = next((i for i, word in enumerate(words) if word in BREAKERS), len(words))
    colors: list[str] = []
    for index, word in enumerate(words):
        color = COLOR_WORDS.get(word)
        if color is None or index in own:
            continue
        in_head = index < head_end
        clothing = (
            category == "person"
            and index > 0
            and any(words[k] in CLOTHING_LEADS for k in range(head_end, index))
            and not any(words[k] in BREAKERS - CLOTHING_LEADS for k in range(head_end + 1, index))
        )
        if (in_head or clothing) and color not in colors:
            colors.append(color)
    relation_index, relation, dangling = _first_relation(words)
    positions: list[str] = []
    for index, word in enumerate(words[:relation_index]):
        if word in POSITION_WORDS and not (index + 1 < len(words) and words[index + 1] == "of"):
            for position in POSITION_WORDS[word]:
                if position not in positions:
                    positions.append(position)
    return Mentions(tuple(colors), tuple(positions), relation, dangling)


__all__ = [
    "BREAKERS",
    "CATEGORY_NOUNS",
    "COLOR_WORDS",
    "POSITIONS",
    "POSITION_WORDS",
    "RELATION_PHRASES",
    "SYNONYMS",
    "Mentions",
    "RelationMention",
    "category_at",
    "names_category",
    "read_expression",
    "relation_at",
    "tokens",
]
