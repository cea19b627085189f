"""Helpers shared by the harness tests: toy data and the toy plugin's entry points."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
REPO = HERE.parent.parent

sys.path.insert(0, str(HERE))


TOY_ENTRY_POINTS = """\
[attreval.tasks]
toy_questions = toy_plugin:ToyQuestions
toy_segmentation = toy_plugin:ToySegmentation
toy = toy_plugin:TOY_GROUP

[attreval.models]
counting = toy_plugin:CountingAdapter
"""


def write_toy_data(root: Path, count: int = 12) -> Path:
    """Write ``count`` toy samples with 24x32 images under ``root/toy``; returns ``root``."""
    folder = root / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    items = []
    for index in range(count):
        height, width = 24, 32
        name = f"img{index % 3}.png"
        if not (folder / name).exists():
            Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(folder / name)
        x0, y0 = int(rng.integers(0, 16)), int(rng.integers(0, 12))
        items.append(
            {
                "id": f"s{index:03d}",
                "image": name,
                "question": f"Is there a box number {index}?",
                "answer": "yes" if index % 2 == 0 else "no",
                "box": [x0, y0, x0 + 8 + index % 5, y0 + 6 + index % 4],
                "height": height,
                "width": width,
            }
        )
    (folder / "toy.json").write_text(json.dumps(items, indent=1))
    return root
