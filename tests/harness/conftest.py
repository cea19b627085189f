"""Shared fixtures of the harness tests: toy data, the toy plugin (in-process and as an entry point)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).parent
REPO = HERE.parent.parent

sys.path.insert(0, str(HERE))

import toy_plugin  # noqa: E402

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


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    return write_toy_data(tmp_path / "data")


@pytest.fixture(scope="session", autouse=True)
def toy_registered() -> None:
    """Register the toy tasks and adapter in this process's registries (once)."""
    from harness.model import MODELS
    from harness.task import TASKS

    if "toy_questions" not in TASKS:
        TASKS.register("toy_questions", toy_plugin.ToyQuestions)
        TASKS.register("toy_segmentation", toy_plugin.ToySegmentation)
        TASKS.register("toy", toy_plugin.TOY_GROUP)
    if "counting" not in MODELS:
        MODELS.register("counting", toy_plugin.CountingAdapter)


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for subprocesses in which the toy plugin is installed through entry points."""
    site = tmp_path_factory.mktemp("plugin_site")
    info = site / "attreval_toy-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: attreval-toy\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(TOY_ENTRY_POINTS)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), str(site), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env
