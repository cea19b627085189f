"""Fixtures of the harness tests: toy data, the toy plugin (in-process and as an entry point)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import toy_plugin
from harness_fixtures import HERE, REPO, TOY_ENTRY_POINTS, write_toy_data


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
