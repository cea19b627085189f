"""Per-sample numbers, masks and sort order for the drill-down, read from ``samples/<task>.jsonl`` rows.

Per-sample values come from each metric's ``sample_values(record)`` when the metric can be rebuilt
from its ``results.json`` config (``harness.metrics.build_metric``), otherwise from the record's
numeric items (the base class's default). A per-sample value's direction is the direction of the
reported value with the same name (``iou`` ~ ``IoU``), or of the reported value whose name ends with
it (``iou`` ~ ``gIoU``); values with no such match are taken as higher-is-better.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.metrics import Metric, build_metric
from harness.results import TaskResult
from reports.formatting import normalised_name


def rebuild_metrics(task: TaskResult) -> dict[str, Metric | None]:
    """Metric name -> the metric rebuilt from the task's config (``None`` when it is not registered)."""
    metrics: dict[str, Metric | None] = {}
    for config in task["config"].get("metrics", []):
        if not isinstance(config, dict) or not isinstance(config.get("name"), str):
            continue
        try:
            metrics[config["name"]] = build_metric(config)
        except (UserError, ImportError, TypeError, ValueError):
            metrics[config["name"]] = None
    return metrics


def _numeric_items(record: Mapping[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in record.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def record_values(metric: Metric | None, record: Any) -> dict[str, float]:
    """The per-sample values of one record (finite numbers only)."""
    if not isinstance(record, dict):
        return {}
    values = _numeric_items(record)
    if metric is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            values = {key: float(value) for key, value in metric.sample_values(record).items()}
    return {key: value for key, value in values.items() if math.isfinite(value)}


def value_direction(name: str, higher_is_better: Mapping[str, bool]) -> bool | None:
    """Direction of a per-sample value from the task's reported values (see the module docstring)."""
    key = normalised_name(name.rsplit(".", 1)[-1])
    if not key:
        return None
    for reported, higher in higher_is_better.items():
        if normalised_name(reported) == key:
            return higher
    for reported, higher in higher_is_better.items():
        if len(key) >= 3 and normalised_name(reported).endswith(key):
            return higher
    return None


@dataclass
class SampleTable:
    """Per-sample values of one task, one column per value, aligned with the log rows.

    Attributes:
        columns: value names; a name reported by two metrics is qualified as ``metric.value``.
        values: one dict ``column -> value`` per row (empty for failed rows).
        directions: column -> higher is better (``True`` where unknown).
        primary: the column the "worst first" order sorts on (``None`` when there are no values).
    """

    columns: list[str]
    values: list[dict[str, float]]
    directions: dict[str, bool]
    primary: str | None

    def worst_first(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Row positions ordered worst first: failed samples, then the primary value, then the index."""

        def key(position: int) -> tuple[int, float, int]:
            failed = rows[position].get("error") is not None
            value = self.values[position].get(self.primary) if self.primary else None
            if value is None:
                return (0 if failed else 2, 0.0, int(rows[position]["index"]))
            signed = value if self.directions[self.primary] else -value  # type: ignore[index]
            return (1, signed, int(rows[position]["index"]))

        return sorted(range(len(rows)), key=key)


def sample_table(task: TaskResult, rows: Sequence[Mapping[str, Any]]) -> SampleTable:
    """Extract the per-sample values of ``rows`` and pick the column that ranks samples."""
    metrics = rebuild_metrics(task)
    per_metric: list[dict[str, dict[str, float]]] = []
    owners: dict[str, list[str]] = {}
    for row in rows:
        found = {}
        for metric_name, record in row.get("scores", {}).items():
            values = record_values(metrics.get(metric_name), record)
            found[metric_name] = values
            for key in values:
                if metric_name not in owners.setdefault(key, []):
                    owners[key].append(metric_name)
        per_metric.append(found)
    columns: list[str] = []
    naming: dict[tuple[str, str], str] = {}
    for key, names in owners.items():
        for metric_name in names:
            column = key if len(names) == 1 else f"{metric_name}.{key}"
            naming[(metric_name, key)] = column
            columns.append(column)
    values = [
        {naming[(metric_name, key)]: value for metric_name, items in found.items() for key, value in items.items()}
        for found in per_metric
    ]
    known = {column: value_direction(column, task["higher_is_better"]) for column in columns}
    directions = {column: True if direction is None else direction for column, direction in known.items()}
    primary = next((column for column in columns if known[column] is not None), columns[0] if columns else None)
    return SampleTable(columns, values, directions, primary)


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------


def is_rle(value: Any) -> bool:
    """Whether ``value`` looks like an RLE dict with string counts and a [height, width] size."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("counts"), str)
        and isinstance(value.get("size"), list)
        and len(value["size"]) == 2
        and all(isinstance(side, int) and side >= 0 for side in value["size"])
    )


def target_masks(target: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Ground-truth masks of a sample: ``target["mask"]`` and/or the list ``target["masks"]``."""
    found = []
    if is_rle(target.get("mask")):
        found.append(target["mask"])
    listed = target.get("masks")
    if isinstance(listed, list):
        found.extend(mask for mask in listed if is_rle(mask))
    return found


def predicted_masks(prediction: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Predicted masks of a sample (``prediction.masks``), skipping anything that is not an RLE."""
    if not prediction or not isinstance(prediction.get("masks"), list):
        return []
    return [mask for mask in prediction["masks"] if is_rle(mask)]


def summarise_masks(value: Any) -> Any:
    """``value`` with every RLE replaced by a short ``"<mask HxW>"`` note, for showing targets as text."""
    if is_rle(value):
        return f"<mask {value['size'][0]}x{value['size'][1]}>"
    if isinstance(value, dict):
        return {key: summarise_masks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [summarise_masks(item) for item in value]
    return value


__all__ = [
    "SampleTable",
    "is_rle",
    "predicted_masks",
    "rebuild_metrics",
    "record_values",
    "sample_table",
    "summarise_masks",
    "target_masks",
    "value_direction",
]
