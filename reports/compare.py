"""Run-to-run regression check: ``run_eval.py compare BASELINE CURRENT [--tolerance METRIC=VALUE ...]``.

Every metric of every baseline task is compared with the current run. A metric *regresses* when it
moved in its bad direction (from ``higher_is_better``; either way when unknown) by more than its
tolerance, became undefined, or disappeared. Tolerances are in ``results.json`` units (fractions:
0.01 is one percentage point) and default to 0, so any worsening fails; improvements are reported
but pass. A tolerance key is ``task/metric``, ``metric`` or ``*`` (most specific wins).

When both runs have ``samples/<task>.jsonl``, each difference also gets a paired bootstrap 95%
interval: the task's metrics are rebuilt from their ``results.json`` config with
``harness.metrics.build_metric`` and fed the per-sample records of the samples scored in both runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.metrics import METRICS, build_metric
from harness.stats import PairedDifference, paired_bootstrap
from reports.formatting import percent
from reports.rundata import RunFolder, load_run

WORSE = "WORSE"
MISSING = "MISSING"
FAILING = (WORSE, MISSING)


def parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    """``["cIoU=0.005", "pope_random/f1=0.01", "*=0.001"]`` -> ``{key: tolerance}``.

    Raises:
        UserError: an item without ``=``, a value that is not a non-negative number, or a repeated key.
    """
    tolerances: dict[str, float] = {}
    for item in items:
        for part in (piece.strip() for piece in item.split(",")):
            if not part:
                continue
            key, sep, value = part.rpartition("=")
            key = key.strip()
            if not sep or not key:
                raise UserError(f"--tolerance {part!r} must look like METRIC=VALUE (e.g. cIoU=0.005)")
            try:
                number = float(value)
            except ValueError:
                raise UserError(f"--tolerance {part!r}: {value!r} is not a number") from None
            if not math.isfinite(number) or number < 0:
                raise UserError(f"--tolerance {part!r}: the tolerance must be a non-negative number")
            if key in tolerances:
                raise UserError(f"--tolerance gives {key!r} twice")
            tolerances[key] = number
    return tolerances


def tolerance_for(task: str, metric: str, tolerances: Mapping[str, float]) -> float:
    for key in (f"{task}/{metric}", metric, "*"):
        if key in tolerances:
            return tolerances[key]
    return 0.0


@dataclass
class MetricChange:
    """One metric of one task in both runs."""

    task: str
    metric: str
    baseline: float | None
    current: float | None
    higher_is_better: bool | None
    tolerance: float
    status: str
    paired: PairedDifference | None = None
    paired_samples: int | None = None

    @property
    def difference(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class Comparison:
    """The result of comparing two runs."""

    baseline: Path
    current: Path
    changes: list[MetricChange]
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricChange]:
        return [change for change in self.changes if change.status in FAILING]

    @property
    def identical(self) -> bool:
        return all(change.status == "same" for change in self.changes)

    def exit_code(self) -> int:
        """1 when any metric regressed beyond its tolerance, else 0."""
        return 1 if self.regressions else 0


def classify(baseline: float | None, current: float | None, higher: bool | None, tolerance: float) -> str:
    """``same``, ``better``, ``worse`` (within tolerance), ``WORSE`` (beyond it) or ``changed``."""
    if baseline is None and current is None:
        return "same"
    if current is None:
        return WORSE  # the metric became undefined
    if baseline is None:
        return "better"  # it became defined
    delta = current - baseline
    if delta == 0:
        return "same"
    if higher is None:
        return WORSE if abs(delta) > tolerance else "changed"
    improved = delta > 0 if higher else delta < 0
    if improved:
        return "better"
    return WORSE if abs(delta) > tolerance else "worse"


def _paired(
    baseline: RunFolder, current: RunFolder, task: str, iterations: int, seed: int
) -> tuple[dict[str, PairedDifference], int | None, list[str]]:
    """Paired bootstrap of every value of ``task``'s metrics over the samples scored in both runs."""
    if iterations <= 0:
        return {}, None, []
    if not (baseline.has_samples(task) and current.has_samples(task)):
        return {}, None, [f"{task}: no paired intervals (samples/{task}.jsonl is missing on one side)"]
    base_rows = {row["sample_id"]: row for row in baseline.samples(task)}
    current_rows = {row["sample_id"]: row for row in current.samples(task)}
    results: dict[str, PairedDifference] = {}
    notes = []
    shared = [
        sample_id
        for sample_id, row in base_rows.items()
        if row.get("error") is None and current_rows.get(sample_id, {}).get("error", "missing") is None
    ]
    configs = current.tasks[task]["config"].get("metrics", [])
    if configs != baseline.tasks[task]["config"].get("metrics", []):
        notes.append(f"{task}: metric protocols differ between the runs; paired intervals use the current run's")
    for config in configs:
        name = config.get("name") if isinstance(config, dict) else None
        if name is None:
            continue
        if name not in METRICS:
            notes.append(f"{task}: no paired interval for metric {name!r} (not registered in harness.metrics.METRICS)")
            continue
        try:
            metric = build_metric(config)
        except (UserError, ImportError, TypeError, ValueError) as error:
            notes.append(f"{task}: no paired interval for metric {name!r} ({error})")
            continue
        pairs = [
            (base_rows[sample_id]["scores"].get(name), current_rows[sample_id]["scores"].get(name))
            for sample_id in shared
        ]
        pairs = [(left, right) for left, right in pairs if left is not None and right is not None]
        if not pairs:
            continue
        try:
            found = paired_bootstrap(
                metric, [left for left, _ in pairs], [right for _, right in pairs], iterations=iterations, seed=seed
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            notes.append(f"{task}: paired bootstrap of {name!r} failed on the stored records ({error})")
            continue
        results.update(found)
    return results, len(shared), notes


def compare_runs(
    baseline_dir: Path,
    current_dir: Path,
    tolerances: Mapping[str, float] | None = None,
    *,
    bootstrap_iters: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare every metric of ``baseline_dir``'s run with ``current_dir``'s.

    Raises:
        DataError: a run folder, results file or samples log is missing or malformed.
    """
    tolerances = dict(tolerances or {})
    baseline, current = load_run(baseline_dir), load_run(current_dir)
    changes: list[MetricChange] = []
    notes: list[str] = []
    for task, base_result in baseline.tasks.items():
        current_result = current.tasks.get(task)
        if current_result is None:
            for metric, value in base_result["metrics"].items():
                changes.append(
                    MetricChange(
                        task,
                        metric,
                        value,
                        None,
                        base_result["higher_is_better"].get(metric),
                        tolerance_for(task, metric, tolerances),
                        MISSING,
                    )
                )
            notes.append(f"{task}: task missing from the current run")
            continue
        if base_result["fingerprint"] != current_result["fingerprint"]:
            notes.append(f"{task}: task fingerprint differs (prompt, generation settings or data changed)")
        if base_result["n_samples"] != current_result["n_samples"]:
            notes.append(
                f"{task}: {base_result['n_samples']} samples in the baseline, {current_result['n_samples']} now"
            )
        if base_result["n_failed"] != current_result["n_failed"]:
            notes.append(f"{task}: failed samples {base_result['n_failed']} -> {current_result['n_failed']}")
        paired, shared, paired_notes = _paired(baseline, current, task, bootstrap_iters, seed)
        notes += paired_notes
        for metric, value in base_result["metrics"].items():
            higher = current_result["higher_is_better"].get(metric, base_result["higher_is_better"].get(metric))
            tolerance = tolerance_for(task, metric, tolerances)
            if metric not in current_result["metrics"]:
                changes.append(MetricChange(task, metric, value, None, higher, tolerance, MISSING))
                continue
            now = current_result["metrics"][metric]
            changes.append(
                MetricChange(
                    task,
                    metric,
                    value,
                    now,
                    higher,
                    tolerance,
                    classify(value, now, higher, tolerance),
                    paired.get(metric),
                    shared if metric in paired else None,
                )
            )
        for metric, now in current_result["metrics"].items():
            if metric not in base_result["metrics"]:
                higher = current_result["higher_is_better"].get(metric)
                changes.append(
                    MetricChange(task, metric, None, now, higher, tolerance_for(task, metric, tolerances), "new")
                )
    for task in current.tasks:
        if task not in baseline.tasks:
            notes.append(f"{task}: new task, not in the baseline")
    return Comparison(baseline.path, current.path, changes, notes)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def format_comparison(comparison: Comparison) -> str:
    """The table of differences printed by ``run_eval.py compare`` (values in percentage points)."""
    header = ["task", "metric", "baseline", "current", "diff", "tolerance", "paired 95% CI", "p", "status"]
    table = [header]
    for change in comparison.changes:
        difference = change.difference
        paired = change.paired
        table.append(
            [
                change.task,
                change.metric + {True: " ↑", False: " ↓", None: ""}[change.higher_is_better],
                percent(change.baseline) if change.baseline is not None or change.status != "new" else "",
                percent(change.current) if change.current is not None or change.status != MISSING else "",
                "" if difference is None else f"{100 * difference:+.2f}",
                f"{100 * change.tolerance:.2f}",
                "" if paired is None else f"[{100 * paired.low:+.2f}, {100 * paired.high:+.2f}]",
                "" if paired is None else f"{paired.p_value:.3f}",
                change.status,
            ]
        )
    widths = [max(len(_cell(row[column])) for row in table) for column in range(len(header))]
    numeric = {2, 3, 4, 5, 7}
    lines = []
    for number, row in enumerate(table):
        cells = [
            _cell(value).rjust(width) if column in numeric else _cell(value).ljust(width)
            for column, (value, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append("")
    lines.append("values, differences and tolerances in percentage points (100 x results.json)")
    lines += [f"note: {note}" for note in comparison.notes]
    regressions = comparison.regressions
    if regressions:
        lines.append(f"{len(regressions)} metric(s) worse than their tolerance: REGRESSION")
    elif comparison.identical:
        lines.append("identical metrics")
    else:
        lines.append("no metric worse than its tolerance")
    return "\n".join(lines)


__all__ = [
    "Comparison",
    "MetricChange",
    "classify",
    "compare_runs",
    "format_comparison",
    "parse_tolerances",
    "tolerance_for",
]
