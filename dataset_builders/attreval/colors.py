"""Colour of an object's pixels: every pixel mapped to the nearest named colour, shares per colour class.

Mapping (documented in the datasheet): a pixel's sRGB value goes to the nearest of the CSS Color Module
Level 4 named colours in `PROTOTYPES` by CIE76 distance in CIELAB (D65), and takes that colour's class:
one of the 12 `CLASSES` (LIRA's colour words without the metallic ``silver`` and ``gold``). Lookups go
through a 32 x 32 x 32 table over RGB (8-level steps), built once. An object's colour profile is the
share of its mask pixels in each class.

A colour *word* (LIRA's 14) is confirmed by the pixel classes of its family (`FAMILIES`): each class
word by itself, ``silver`` by gray and white, ``gold`` by yellow, orange and brown (metal reflects
its surroundings, so no pixel class of its own). Hard negatives come from `NEIGHBOURS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np

CLASSES: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown", "gray", "white", "black",
)  # fmt: skip
"""Pixel colour classes."""

PROTOTYPES: dict[str, tuple[tuple[str, tuple[int, int, int]], ...]] = {
    "red": (
        ("red", (255, 0, 0)), ("darkred", (139, 0, 0)), ("firebrick", (178, 34, 34)), ("crimson", (220, 20, 60)),
        ("maroon", (128, 0, 0)), ("indianred", (205, 92, 92)), ("tomato", (255, 99, 71)),
    ),
    "orange": (
        ("orange", (255, 165, 0)), ("darkorange", (255, 140, 0)), ("orangered", (255, 69, 0)),
        ("coral", (255, 127, 80)),
    ),
    "yellow": (("yellow", (255, 255, 0)), ("gold", (255, 215, 0)), ("khaki", (240, 230, 140)),
               ("goldenrod", (218, 165, 32))),
    "green": (
        ("green", (0, 128, 0)), ("lime", (0, 255, 0)), ("darkgreen", (0, 100, 0)), ("forestgreen", (34, 139, 34)),
        ("limegreen", (50, 205, 50)), ("seagreen", (46, 139, 87)), ("olivedrab", (107, 142, 35)),
        ("yellowgreen", (154, 205, 50)), ("darkolivegreen", (85, 107, 47)), ("mediumseagreen", (60, 179, 113)),
        ("lightgreen", (144, 238, 144)),
    ),
    "cyan": (
        ("cyan", (0, 255, 255)), ("darkcyan", (0, 139, 139)), ("teal", (0, 128, 128)),
        ("turquoise", (64, 224, 208)), ("darkturquoise", (0, 206, 209)), ("lightseagreen", (32, 178, 170)),
    ),
    "blue": (
        ("blue", (0, 0, 255)), ("navy", (0, 0, 128)), ("darkblue", (0, 0, 139)), ("mediumblue", (0, 0, 205)),
        ("royalblue", (65, 105, 225)), ("dodgerblue", (30, 144, 255)), ("steelblue", (70, 130, 180)),
        ("cornflowerblue", (100, 149, 237)), ("deepskyblue", (0, 191, 255)), ("skyblue", (135, 206, 235)),
        ("lightblue", (173, 216, 230)), ("midnightblue", (25, 25, 112)),
    ),
    "purple": (
        ("purple", (128, 0, 128)), ("indigo", (75, 0, 130)), ("darkviolet", (148, 0, 211)),
        ("blueviolet", (138, 43, 226)), ("mediumpurple", (147, 112, 219)), ("darkmagenta", (139, 0, 139)),
        ("rebeccapurple", (102, 51, 153)), ("plum", (221, 160, 221)), ("violet", (238, 130, 238)),
    ),
    "pink": (
        ("pink", (255, 192, 203)), ("lightpink", (255, 182, 193)), ("hotpink", (255, 105, 180)),
        ("deeppink", (255, 20, 147)), ("palevioletred", (219, 112, 147)), ("mediumvioletred", (199, 21, 133)),
        ("magenta", (255, 0, 255)),
    ),
    "brown": (
        ("saddlebrown", (139, 69, 19)), ("sienna", (160, 82, 45)), ("chocolate", (210, 105, 30)),
        ("peru", (205, 133, 63)), ("tan", (210, 180, 140)), ("burlywood", (222, 184, 135)),
        ("rosybrown", (188, 143, 143)), ("sandybrown", (244, 164, 96)), ("darkgoldenrod", (184, 134, 11)),
    ),
    "gray": (
        ("gray", (128, 128, 128)), ("darkgray", (169, 169, 169)), ("dimgray", (105, 105, 105)),
        ("silver", (192, 192, 192)), ("lightgray", (211, 211, 211)), ("gainsboro", (220, 220, 220)),
        ("slategray", (112, 128, 144)), ("lightslategray", (119, 136, 153)), ("darkslategray", (47, 79, 79)),
    ),
    "white": (
        ("white", (255, 255, 255)), ("whitesmoke", (245, 245, 245)), ("snow", (255, 250, 250)),
        ("ivory", (255, 255, 240)), ("linen", (250, 240, 230)), ("beige", (245, 245, 220)),
    ),
    "black": (("black", (0, 0, 0)),),
}  # fmt: skip
"""Class -> CSS named colours (name, sRGB) that map to it. CSS ``brown`` (a dark red) is left out."""

FAMILIES: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in CLASSES},
    "silver": ("gray", "white"),
    "gold": ("yellow", "orange", "brown"),
}
"""Colour word -> the pixel classes that confirm it."""

NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "red": ("orange", "pink", "brown"),
    "orange": ("red", "yellow", "brown"),
    "yellow": ("orange", "green", "gold"),
    "green": ("yellow", "cyan"),
    "cyan": ("green", "blue"),
    "blue": ("cyan", "purple"),
    "purple": ("blue", "pink"),
    "pink": ("purple", "red"),
    "brown": ("orange", "red", "gold"),
    "gold": ("silver", "brown"),
    "silver": ("gold", "black"),
    "gray": ("white", "black"),
    "white": ("gray",),
    "black": ("gray", "brown"),
}
"""Colour word -> its neighbouring colour words, nearest first: the colour wheel red-orange-yellow-green-
cyan-blue-purple-pink, brown beside red and orange, the achromatic scale black-gray-white, and the metals
beside each other (not beside gray or white, which a silver object may well be called)."""

COLOR_WORDS: tuple[str, ...] = tuple(FAMILIES)

LEVELS = 32
"""Bins per RGB channel of the lookup table."""


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) in [0, 255] -> CIELAB (D65)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 1, 3) / 255.0).reshape(-1, 3)


@cache
def lookup_table() -> np.ndarray:
    """``(LEVELS, LEVELS, LEVELS)`` uint8: class index of each RGB bin (bin centres mapped)."""
    names = [name for name in CLASSES for _ in PROTOTYPES[name]]
    colours = np.array([rgb for name in CLASSES for _, rgb in PROTOTYPES[name]], dtype=np.float64)
    prototypes = _srgb_to_lab(colours)
    step = 256 / LEVELS
    centres = (np.arange(LEVELS) + 0.5) * step
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = _srgb_to_lab(grid)
    nearest = np.argmin(((lab[:, None, :] - prototypes[None, :, :]) ** 2).sum(axis=-1), axis=1)
    classes = np.array([CLASSES.index(names[i]) for i in nearest], dtype=np.uint8)
    return classes.reshape(LEVELS, LEVELS, LEVELS)


def classify_pixels(pixels: np.ndarray) -> np.ndarray:
    """Class index (into `CLASSES`) of every pixel of an ``(..., 3)`` uint8 RGB array."""
    shift = 8 - int(np.log2(LEVELS))
    bins = np.asarray(pixels, dtype=np.uint8) >> shift
    return lookup_table()[bins[..., 0], bins[..., 1], bins[..., 2]]


def class_shares(classes: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Share of the mask's pixels in each class (all zero for an empty mask)."""
    chosen = classes[mask.astype(bool)]
    counts = np.bincount(chosen.ravel(), minlength=len(CLASSES)).astype(float)
    total = counts.sum()
    return {name: (float(counts[i] / total) if total else 0.0) for i, name in enumerate(CLASSES)}


def word_share(shares: Mapping[str, float], word: str) -> float:
    """Share of pixels that confirm colour word ``word``."""
    return float(sum(shares.get(name, 0.0) for name in FAMILIES[word]))


def dominant(shares: Mapping[str, float]) -> str | None:
    """The class with the largest share (``None`` for an empty mask); ties go to the earlier class."""
    best = max(CLASSES, key=lambda name: (shares.get(name, 0.0), -CLASSES.index(name)))
    return best if shares.get(best, 0.0) > 0 else None


__all__ = [
    "CLASSES",
    "COLOR_WORDS",
    "FAMILIES",
    "NEIGHBOURS",
    "PROTOTYPES",
    "class_shares",
    "classify_pixels",
    "dominant",
    "lookup_table",
    "word_share",
]
