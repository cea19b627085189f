"""Benchmark tasks. Built-ins are declared here as lazy entries; plugins use the ``attreval.tasks`` group."""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError


def ensure_default_data_root(path: Path) -> Path:
    """The data root used when ``--data-root`` is not given: the bundled mini benchmark."""
    if not path.exists():
        raise DataError(f"default data root {path} does not exist; pass --data-root DIR")
    return path
