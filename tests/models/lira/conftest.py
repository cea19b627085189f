"""Shared test settings for the LIRA model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny models run thousands of small ops; on a shared 2-core machine, intra-op threads make them several
    times slower (thread hand-offs dominate). Numbers checked here do not depend on the thread count beyond
    rounding, which every tolerance covers."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
