"""Attribute vocabulary: LIRA's four `[SEG]` probe word lists and how attribute values map onto words.

The word lists are data taken from echo840/LIRA ``omg_llava/tools/app_lira.py`` (commit ``20d5684``),
where the demo reads the LM-head logits of these words at the first ``[SEG]`` token (lira-model.md
§15.21, metrics.md §5.3): 80 VOC-style COCO object names, 18 relations, 19 positions and 14 colours.
LIRA lower-cases each word before tokenising it and skips words that are not a single token, so a probe
may carry only part of a list.

Attribute types are ``category``, ``color``, ``position`` and ``relation``. The AttrEval builder
(`dataset_builders.attreval`) writes attribute values as the lower-cased LIRA words (``"red"``,
``"left"``, ``"in front of"``) and categories as COCO names (``"dining table"``); the seg-token
analysis (`reports.analysis`) matches those values to the words of whatever lists a probe carries:

1. A probe's word list plays the role of an attribute type by its name, case-insensitively:
   `LIST_ROLES` (``category``/``objects``/``classes``, ``color``/``colours``, ``position(s)``,
   ``relation(s)``). Lists with other names are ignored.
2. Words compare after `normalise_word`: lower case, with spaces, hyphens and underscores removed
   (``"Dining table"`` = ``"diningtable"``).
3. A value also matches its aliases (`ALIASES`): COCO names and LIRA's VOC-style names
   (``motorcycle`` = ``motorbike``, ``tv`` = ``tvmonitor``, ...) and ``gray`` = ``grey``.
4. A value with no matching word in the probe's list is not scored (reported as unmatched).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

LIRA_SOURCE = "echo840/LIRA omg_llava/tools/app_lira.py @ 20d56847e0e910d45872f9baaf50d8855b311116"
"""Where the four word lists come from."""

LIRA_OBJECTS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa",
    "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""LIRA's ``objects`` list (80 names, VOC spellings for six COCO classes), as written in the source."""

LIRA_RELATIONS: tuple[str, ...] = (
    "Above", "Below", "Beside", "Between", "Behind", "In front of", "Next to", "Near", "Far", "Over", "Under",
    "Inside", "Outside", "Adjacent", "Opposite", "Surrounding", "Within", "Alongside",
)  # fmt: skip
"""LIRA's ``relations`` list (18 words), as written in the source."""

LIRA_POSITIONS: tuple[str, ...] = (
    "North", "South", "East", "West", "Northeast", "Northwest", "Southeast", "Southwest", "Up", "Down", "Left",
    "Right", "Top", "Bottom", "Front", "Back", "Center", "Edge", "Corner",
)  # fmt: skip
"""LIRA's ``positions`` list (19 words), as written in the source."""

LIRA_COLORS: tuple[str, ...] = (
    "Red", "Orange", "Yellow", "Green", "Blue", "Purple", "Pink", "Brown", "Cyan", "Silver", "Gold", "Gray",
    "White", "Black",
)  # fmt: skip
"""LIRA's ``colors`` list (14 words), as written in the source."""

ATTRIBUTE_TYPES: tuple[str, ...] = ("category", "color", "position", "relation")

WORD_LISTS: dict[str, tuple[str, ...]] = {
    "category": tuple(word.lower() for word in LIRA_OBJECTS),
    "relation": tuple(word.lower() for word in LIRA_RELATIONS),
    "position": tuple(word.lower() for word in LIRA_POSITIONS),
    "color": tuple(word.lower() for word in LIRA_COLORS),
}
"""Attribute type -> LIRA's words, lower-cased as LIRA tokenises them (the default probe configuration)."""

LIST_ROLES: dict[str, str] = {
    **dict.fromkeys(("category", "categories", "object", "objects", "class", "classes"), "category"),
    **dict.fromkeys(("color", "colors", "colour", "colours"), "color"),
    **dict.fromkeys(("position", "positions"), "position"),
    **dict.fromkeys(("relation", "relations"), "relation"),
}
"""Word-list name (lower case) -> the attribute type it scores (LIRA's demo names its lists ``objects``,
``relations``, ``positions``, ``colors``)."""

ALIASES: dict[str, tuple[str, ...]] = {
    "motorcycle": ("motorbike",),
    "airplane": ("aeroplane",),
    "couch": ("sofa",),
    "potted plant": ("pottedplant",),
    "dining table": ("diningtable",),
    "tv": ("tvmonitor", "tv monitor"),
    "gray": ("grey",),
}
"""Value -> other spellings of the same word (COCO name -> LIRA's VOC-style name; US -> UK spelling)."""


def normalise_word(word: str) -> str:
    """Lower case without spaces, hyphens or underscores: ``"Dining table"`` -> ``"diningtable"``."""
    return "".join(character for character in word.lower() if character not in " -_\t")


def _spellings(value: str) -> set[str]:
    forms = {value, *ALIASES.get(value, ())}
    forms |= {key for key, others in ALIASES.items() if value in others}
    return {normalise_word(form) for form in forms}


def list_role(name: str) -> str | None:
    """The attribute type a word list of this name scores, or ``None``."""
    return LIST_ROLES.get(name.strip().lower())


def match_word(value: str, words: Iterable[str]) -> str | None:
    """The word of ``words`` (as spelled there) that names ``value``, or ``None`` (rules in the module docstring)."""
    wanted = _spellings(value)
    return next((word for word in words if normalise_word(word) in wanted), None)


def role_lists(word_logits: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Attribute type -> the name of the probe's list that scores it (the first list with that role)."""
    roles: dict[str, str] = {}
    for name in word_logits:
        role = list_role(name)
        if role is not None and role not in roles:
            roles[role] = name
    return roles


__all__ = [
    "ALIASES",
    "ATTRIBUTE_TYPES",
    "LIRA_COLORS",
    "LIRA_OBJECTS",
    "LIRA_POSITIONS",
    "LIRA_RELATIONS",
    "LIRA_SOURCE",
    "LIST_ROLES",
    "WORD_LISTS",
    "list_role",
    "match_word",
    "normalise_word",
    "role_lists",
]
