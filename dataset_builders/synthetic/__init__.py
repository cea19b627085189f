"""Synthetic scale data: procedurally drawn scenes of coloured shapes, in every task's real file format.

``python -m dataset_builders.synthetic --output data/synthetic --scenes 5000`` draws N scenes of two to
four shapes (circle, square, triangle) in distinct cells of a 3x3 grid, each with a colour, and writes
referring expressions ("the red circle at the top left"), grounded captions, POPE questions about
colour-shape pairs, captions and AttrEval pairs through `dataset_builders.writer` — the same files
and layout as the mini benchmark, for benchmarks at 10,000+ samples (about 2 RefCOCO sentences,
4 POPE questions and 2 AttrEval questions per scene per task). The same seed gives the same files.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dataset_builders.writer import (
    AttrPair,
    Benchmark,
    GcgEntry,
    ImageEntry,
    ObjectEntry,
    PopeEntry,
    RefEntry,
    write_benchmark,
)

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (240, 140, 30),
}
SHAPES = {"circle": "sports ball", "square": "tv", "triangle": "kite"}
"""Shape -> the COCO category its annotation carries (RefCOCO and CHAIR files need one)."""

CELLS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    cell: int
    polygon: list[float]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def place(self) -> str:
        where = CELLS[self.cell]
        return "in the center" if where == "center" else f"at the {where}" if " " in where else f"on the {where}"


def _polygon(kind: str, cx: float, cy: float, radius: float) -> list[float]:
    if kind == "circle":
        points = [
            (cx + radius * math.cos(2 * math.pi * k / 24), cy + radius * math.sin(2 * math.pi * k / 24))
            for k in range(24)
        ]
    elif kind == "square":
        points = [
            (cx - radius, cy - radius),
            (cx + radius, cy - radius),
            (cx + radius, cy + radius),
            (cx - radius, cy + radius),
        ]
    else:
        points = [(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)]
    return [round(value, 1) for point in points for value in point]


def draw_scene(shapes: tuple[Shape, ...], size: int) -> np.ndarray:
    """The scene's pixels: the shapes' polygons filled on a light grey background."""
    image = Image.new("RGB", (size, size), (205, 205, 200))
    canvas = ImageDraw.Draw(image)
    for shape in shapes:
        canvas.polygon(list(zip(shape.polygon[0::2], shape.polygon[1::2], strict=True)), fill=COLOURS[shape.colour])
    return np.asarray(image)


def random_scene(rng: np.random.Generator, size: int) -> tuple[Shape, ...]:
    """Two to four shapes in distinct grid cells, with distinct colour-shape pairs."""
    count = int(rng.integers(2, 5))
    cells = rng.choice(len(CELLS), size=count, replace=False)
    cell_size = size / 3
    shapes: list[Shape] = []
    used: set[tuple[str, str]] = set()
    for cell in cells:
        while True:
            kind = str(rng.choice(list(SHAPES)))
            colour = str(rng.choice(list(COLOURS)))
            if (kind, colour) not in used:
                used.add((kind, colour))
                break
        radius = cell_size * float(rng.uniform(0.25, 0.42))
        cx = (cell % 3 + 0.5) * cell_size + float(rng.uniform(-0.05, 0.05)) * cell_size
        cy = (cell // 3 + 0.5) * cell_size + float(rng.uniform(-0.05, 0.05)) * cell_size
        shapes.append(Shape(kind, colour, int(cell), _polygon(kind, cx, cy, radius)))
    return tuple(shapes)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _caption(shapes: tuple[Shape, ...]) -> str:
    parts = [f"{_article(shape.name)} {shape.name} {shape.place}" for shape in shapes]
    text = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    return f"{text[0].upper()}{text[1:]} on a grey background."


def make_benchmark(scenes: int, seed: int = 0, size: int = 128) -> Benchmark:
    """``scenes`` random scenes with every task's annotations."""
    rng = np.random.default_rng(seed)
    drawn = [random_scene(rng, size) for _ in range(scenes)]
    frequency = Counter(shape.name for shapes in drawn for shape in shapes)
    popular = [name for name, _ in frequency.most_common()]
    all_pairs = [f"{colour} {kind}" for kind in SHAPES for colour in COLOURS]
    benchmark = Benchmark(images=[], objects=[])
    for index, shapes in enumerate(drawn):
        key = f"scene{index:06d}"
        benchmark.images.append(
            ImageEntry(key, size, size, partial(draw_scene, shapes, size), 1 + index, 10**7 + index, f"sa_{index:08d}")
        )
        present = {shape.name for shape in shapes}
        for number, shape in enumerate(shapes):
            object_key = f"{key}/{number}"
            benchmark.objects.append(ObjectEntry(object_key, key, SHAPES[shape.kind], [shape.polygon]))
            sentences = [f"the {shape.name} {shape.place}", f"{shape.name}"]
            benchmark.refs.append(RefEntry("refcoco", object_key, ("val", "testA", "testB")[index % 3], sentences))
            benchmark.refs.append(RefEntry("refcoco+", object_key, ("val", "testA", "testB")[index % 3], sentences[1:]))
            benchmark.refs.append(RefEntry("refcocog", object_key, ("val", "test")[index % 2], sentences[:1]))
        caption = _caption(shapes)
        phrases = [f"{_article(shape.name)} {shape.name}" for shape in shapes]
        phrases[0] = phrases[0].capitalize()
        groundings = [(phrase, [f"{key}/{number}"]) for number, phrase in enumerate(phrases)]
        benchmark.gcg.append(GcgEntry(("val", "test")[index % 2], key, caption, groundings))
        benchmark.captions[key] = [caption]
        absent_random = [pair for pair in rng.permutation(all_pairs).tolist() if pair not in present]
        absent_popular = [pair for pair in popular + all_pairs if pair not in present]
        same_shape = [f"{colour} {shape.kind}" for shape in shapes for colour in COLOURS]
        absent_adversarial = [pair for pair in dict.fromkeys(same_shape + absent_random) if pair not in present]
        chosen = sorted(present)[:2]
        benchmark.pope.append(
            PopeEntry(
                key,
                chosen,
                {
                    "random": absent_random[: len(chosen)],
                    "popular": list(dict.fromkeys(absent_popular))[: len(chosen)],
                    "adversarial": absent_adversarial[: len(chosen)],
                },
            )
        )
        target = shapes[0]
        other = next(colour for colour in COLOURS if colour != target.colour)
        benchmark.attreval.append(
            AttrPair(
                key,
                "color",
                [
                    (f"What color is the {target.kind} {target.place}? Answer with one word.", target.colour),
                    (f"Is the {target.kind} {target.place} {other}? Answer yes or no.", "no"),
                ],
            )
        )
    return benchmark


def build(root: Path, scenes: int, seed: int = 0, size: int = 128) -> Path:
    """Write ``scenes`` synthetic scenes under ``root``."""
    write_benchmark(make_benchmark(scenes, seed, size), Path(root))
    return Path(root)


__all__ = ["COLOURS", "SHAPES", "build", "draw_scene", "make_benchmark", "random_scene"]
