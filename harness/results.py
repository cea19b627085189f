"""The ``results.json`` schema, and reading and writing run folders.

A run folder holds ``results.json``, ``run.json`` (what was asked, to re-score without the model),
``samples/<task>.jsonl`` (one line per sample), ``cache/`` (predictions) and the reports.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from harness.errors import DataError

SCHEMA_VERSION = 1

VOLATILE_KEYS = ("runtime",)
"""Top-level keys that change between identical runs (dates, timings, batch size, world size)."""


class ModelInfo(TypedDict):
    name: str
    """Registered adapter name."""
    args: str
    """The ``--model-args`` string as given."""
    options: dict[str, str]
    """The adapter's resolved options."""
    fingerprint: str
    """sha256 of adapter, options and weight-file identities; part of every cache key."""


class TaskResult(TypedDict):
    metrics: dict[str, float | None]
    """Metric values as fractions in [0, 1] (``None`` when undefined, e.g. no samples)."""
    intervals: dict[str, list[float]]
    """Bootstrap 95% interval ``[low, high]`` per metric."""
    n_samples: int
    """Samples in the task (after ``--limit``)."""
    n_failed: int
    """Samples that failed in prediction or scoring; they are left out of the metrics."""
    failures: dict[str, int]
    """Failure reason -> count."""
    config: dict[str, Any]
    """Family, kind, prompt, generation settings, options and metric protocols."""
    data_hashes: dict[str, str]
    """sha256 of each annotation file, by role."""
    fingerprint: str
    """Task fingerprint (prompt, generation settings, data hashes)."""
    definitions: dict[str, str]
    """One-line definition of each metric."""
    higher_is_better: dict[str, bool]
    """Direction of each metric."""


class Results(TypedDict):
    schema_version: int
    harness_version: str
    git_commit: str | None
    seed: int
    limit: int | None
    model: ModelInfo
    tasks: dict[str, TaskResult]
    groups: dict[str, dict[str, float | None]]
    """Group name -> mean of each metric over its member tasks (metrics shared by all members)."""
    runtime: NotRequired[dict[str, Any]]
    """Command line, date, timings, world size, batch size: what may differ between equivalent runs."""


def clean_numbers(value: Any) -> Any:
    """Replace NaN and infinities by ``None`` so the JSON is standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: clean_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_numbers(item) for item in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(clean_numbers(data), stream, indent=2, ensure_ascii=False)
        stream.write("\n")
    os.replace(temporary, path)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(clean_numbers(row), ensure_ascii=False, sort_keys=True))
            stream.write("\n")
    os.replace(temporary, path)


def read_json(path: Path, what: str = "JSON file") -> Any:
    """Read JSON, raising `DataError` naming the file (and line) when it is missing or malformed."""
    try:
        with Path(path).open(encoding="utf-8") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise DataError(
            f"{what} {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} cannot be read: {error}") from None


def read_jsonl(path: Path, what: str = "JSONL file") -> list[dict[str, Any]]:
    """Read one JSON object per line; `DataError` names the file and line of the first bad one."""
    rows: list[dict[str, Any]] = []
    try:
        with Path(path).open(encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{what} {path} line {number} is not valid JSON ({error.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{what} {path} line {number}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} cannot be read: {error}") from None
    return rows


def load_results(run_dir: Path) -> Results:
    """Read ``RUN_DIR/results.json`` (or a results file given directly), checking the schema version."""
    path = Path(run_dir)
    path = path / "results.json" if path.is_dir() else path
    results = read_json(path, "results file")
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path} is not an attreval results file of schema version {SCHEMA_VERSION}")
    return results


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without the keys that legitimately differ between identical runs."""
    return {key: value for key, value in results.items() if key not in VOLATILE_KEYS}


__all__ = [
    "SCHEMA_VERSION",
    "VOLATILE_KEYS",
    "ModelInfo",
    "Results",
    "TaskResult",
    "clean_numbers",
    "comparable",
    "load_results",
    "read_json",
    "read_jsonl",
    "write_json",
    "write_jsonl",
]
