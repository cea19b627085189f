"""Toy data, registrations and the ``toy_runs`` fixture of the report tests (no conftest.py here:
tests/harness imports its helpers from ``conftest``, which a second conftest module would shadow).

The toy tasks are those of tests/harness/toy_plugin.py.

Toy data: 12 samples ``s000``..``s011`` on 48x64 images; the truth answer is "yes" for even samples
and "no" for odd ones; the box of sample i is x in [4 + i, 14 + i), y in [3, 11) (10 x 8 pixels).

The ``replay`` run's predictions, and what they must score (worked out by hand):

- toy_questions: s001 answers "yes" (wrong), s002 answers `XSS` (wrong), s003 is missing from the
  replay file (failed: NotInReplay), the others are right -> 9 correct of 11 scored, accuracy 9/11.
- toy_segmentation: s000 exact box (IoU 1), s001 no mask (IoU 0), s002 a mask of the wrong size
  (failed: ScoringError), s003..s011 the box shifted right by 1 pixel: intersection 9x8, union 11x8,
  IoU 9/11 -> mIoU = (1 + 0 + 9 x 9/11) / 11 = 92/121.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "harness"))

import toy_plugin  # noqa: E402

from harness import masks  # noqa: E402

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
HEIGHT, WIDTH, COUNT = 48, 64, 12


def toy_box(index: int) -> list[int]:
    return [4 + index, 3, 14 + index, 11]


def write_toy_data(root: Path) -> Path:
    """The toy data described in the module docstring under ``root/toy``; returns ``root``."""
    folder = root / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(3):
        pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        pixels[..., number] = np.linspace(60, 220, WIDTH, dtype=np.uint8)[None, :]
        pixels[..., (number + 1) % 3] = np.linspace(40, 200, HEIGHT, dtype=np.uint8)[:, None]
        Image.fromarray(pixels).save(folder / f"img{number}.png")
    items = [
        {
            "id": f"s{index:03d}",
            "image": f"img{index % 3}.png",
            "question": f"Is there a box number {index}?",
            "answer": "yes" if index % 2 == 0 else "no",
            "box": toy_box(index),
            "height": HEIGHT,
            "width": WIDTH,
        }
        for index in range(COUNT)
    ]
    (folder / "toy.json").write_text(json.dumps(items, indent=1))
    return root


def box_rle(box: list[int], height: int = HEIGHT, width: int = WIDTH) -> dict[str, Any]:
    return dict(masks.encode(toy_plugin.box_mask(box, height, width)))


def replay_lines() -> list[dict[str, Any]]:
    """The replay predictions of the module docstring."""
    lines = []
    for index in range(COUNT):
        sample_id = f"s{index:03d}"
        truth = "yes" if index % 2 == 0 else "no"
        if index != 3:
            text = {1: "yes", 2: XSS}.get(index, truth)
            lines.append({"task": "toy_questions", "sample_id": sample_id, "text": text})
        x0, y0, x1, y1 = toy_box(index)
        if index == 0:
            predicted = [box_rle([x0, y0, x1, y1])]
        elif index == 1:
            predicted = []
        elif index == 2:
            predicted = [box_rle([x0, y0, x1, y1], HEIGHT + 1, WIDTH)]
        else:
            predicted = [box_rle([x0 + 1, y0, x1 + 1, y1])]
        lines.append({"task": "toy_segmentation", "sample_id": sample_id, "text": "[SEG]", "masks": predicted})
    return lines


def run_cli(*arguments: str) -> int:
    from harness.cli import main

    return main(list(arguments))


def register_toys() -> None:
    """Register the toy tasks, adapter and metrics in this process's registries (once)."""
    from harness.metrics import METRICS
    from harness.model import MODELS
    from harness.task import TASKS

    if "toy_questions" not in TASKS:
        TASKS.register("toy_questions", toy_plugin.ToyQuestions)
        TASKS.register("toy_segmentation", toy_plugin.ToySegmentation)
        TASKS.register("toy", toy_plugin.TOY_GROUP)
    if "counting" not in MODELS:
        MODELS.register("counting", toy_plugin.CountingAdapter)
    for metric in (toy_plugin.Accuracy, toy_plugin.MeanIoU):
        if metric.name not in METRICS:
            METRICS.register(metric.name, metric)


register_toys()


_RUNS: dict[str, Path] = {}


@pytest.fixture(scope="session", name="toy_runs")
def toy_runs_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders ``oracle`` and ``replay`` (with their reports) on the toy data, made once per session.

    Test modules import this fixture (``from report_toy import toy_runs_fixture``); each import is a
    separate pytest fixture definition, so the runs are cached here.
    """
    if _RUNS:
        return _RUNS
    base = tmp_path_factory.mktemp("toy_runs")
    root = write_toy_data(base / "data")
    predictions = base / "replay.jsonl"
    predictions.write_text("".join(json.dumps(line) + "\n" for line in replay_lines()))
    runs = {"oracle": base / "oracle", "replay": base / "replay"}
    common = ["--tasks", "toy", "--data-root", str(root), "--no-progress", "--bootstrap-iters", "200"]
    assert run_cli("run", "--model", "oracle", "--output-dir", str(runs["oracle"]), *common) == 0
    assert (
        run_cli(
            "run", "--model", "replay", "--model-args", f"predictions={predictions}",
            "--output-dir", str(runs["replay"]), *common,
        )
        == 0
    )  # fmt: skip
    _RUNS.update(runs)
    return _RUNS
