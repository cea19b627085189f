"""Reading a run folder for reports: ``results.json`` checked field by field, and the per-sample logs.

Every problem is a `DataError` that names the file and the field, so ``run_eval.py report`` and
``compare`` end with one clear line (exit code 2) instead of a traceback or a wrong table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.results import Results, TaskResult, load_results, read_jsonl

_TASK_FIELDS: dict[str, type | tuple[type, ...]] = {
    "metrics": dict,
    "intervals": dict,
    "n_samples": int,
    "n_failed": int,
    "failures": dict,
    "config": dict,
    "data_hashes": dict,
    "fingerprint": str,
    "definitions": dict,
    "higher_is_better": dict,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_results(results: Mapping[str, Any], path: Path) -> None:
    """Raise `DataError` naming the first field of ``results`` that does not follow the schema."""

    def fail(where: str, expected: str) -> DataError:
        return DataError(f"results file {path}: field {where} must be {expected}")

    model = results.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise fail("model.name", "a string")
    if not isinstance(model.get("fingerprint"), str):
        raise fail("model.fingerprint", "a string")
    tasks = results.get("tasks")
    if not isinstance(tasks, dict):
        raise fail("tasks", "an object mapping task names to results")
    for name, task in tasks.items():
        if not isinstance(task, dict):
            raise fail(f"tasks.{name}", "an object")
        for key, kind in _TASK_FIELDS.items():
            if not isinstance(task.get(key), kind) or isinstance(task.get(key), bool):
                raise fail(f"tasks.{name}.{key}", f"of type {getattr(kind, '__name__', kind)}")
        for metric, value in task["metrics"].items():
            if value is not None and not _is_number(value):
                raise fail(f"tasks.{name}.metrics.{metric}", "a number or null")
        for metric, interval in task["intervals"].items():
            if not (isinstance(interval, list) and len(interval) == 2 and all(map(_is_number, interval))):
                raise fail(f"tasks.{name}.intervals.{metric}", "a [low, high] pair of numbers")
    groups = results.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(values, dict) for values in groups.values()):
        raise fail("groups", "an object mapping group names to metric values")


@dataclass
class RunFolder:
    """A finished run: its results and, when present, its per-sample logs.

    Attributes:
        path: the run folder.
        results: the parsed and checked ``results.json``.
    """

    path: Path
    results: Results
    _samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def tasks(self) -> dict[str, TaskResult]:
        return self.results["tasks"]

    @property
    def model_name(self) -> str:
        return self.results["model"]["name"]

    def samples_path(self, task: str) -> Path:
        return self.path / "samples" / f"{task}.jsonl"

    def has_samples(self, task: str) -> bool:
        return self.samples_path(task).is_file()

    def samples(self, task: str) -> list[dict[str, Any]]:
        """The rows of ``samples/<task>.jsonl`` in file order (checked for the fields reports use)."""
        if task not in self._samples:
            path = self.samples_path(task)
            rows = read_jsonl(path, "samples log")
            for number, row in enumerate(rows, start=1):
                if not isinstance(row.get("index"), int) or not isinstance(row.get("sample_id"), str):
                    raise DataError(
                        f"samples log {path} line {number}: expected integer 'index' and string 'sample_id'"
                    )
                if not isinstance(row.get("scores", {}), dict):
                    raise DataError(f"samples log {path} line {number}: field 'scores' must be an object")
                prediction = row.get("prediction")
                if prediction is not None and not isinstance(prediction, dict):
                    raise DataError(f"samples log {path} line {number}: field 'prediction' must be an object or null")
                if not isinstance(row.get("target", {}), dict):
                    raise DataError(f"samples log {path} line {number}: field 'target' must be an object")
            self._samples[task] = rows
        return self._samples[task]


def load_run(path: Path) -> RunFolder:
    """Read a run folder (or its ``results.json`` given directly).

    Raises:
        DataError: the folder or file is missing, is not JSON, or does not follow the results schema.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"run folder {path} does not exist")
    folder = path if path.is_dir() else path.parent
    results_path = folder / "results.json" if path.is_dir() else path
    results = load_results(results_path)
    check_results(results, results_path)
    return RunFolder(folder, results)


__all__ = ["RunFolder", "check_results", "load_run"]
