"""Shared fixtures of the task tests: the mini benchmark built once per session, offline settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("NLTK_DATA", str((REPO / ".." / "shared" / "nltk_data").resolve()))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini benchmark, built once; tests must not change it (copy it with `mini_copy`)."""
    from dataset_builders.mini import build

    return build(tmp_path_factory.mktemp("mini") / "mini")


@pytest.fixture
def mini_copy(mini_root: Path, tmp_path: Path) -> Path:
    """A private copy of the mini benchmark that a test may damage."""
    target = tmp_path / "mini"
    shutil.copytree(mini_root, target)
    return target
