"""Tiny training data shared by the training tests (written once per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_data import write_crops, write_data


@pytest.fixture(scope="module")
def one_thread_for_module() -> Iterator[None]:
    """One torch thread also for module-scoped fixtures (the package conftest's autouse fixture is per test, and
    set up after them); the tiny models are several times slower with two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every training format on six small pictures, with the ILVC crops rendered."""
    root = write_data(tmp_path_factory.mktemp("lira_training_data"))
    write_crops(root)
    return root
