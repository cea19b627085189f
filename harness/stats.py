"""Seeded bootstrap confidence intervals for metric aggregates, and the paired bootstrap of a difference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.metrics.base import Metric, Record


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_intervals(
    metric: Metric,
    records: Sequence[Record],
    *,
    iterations: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of every value ``metric`` reports, resampling samples.

    Returns ``{value name: [low, high]}``; empty when there are no records, no iterations, or the
    metric opts out of resampling. The same seed and records always give the same intervals.
    """
    if not records or iterations <= 0:
        return {}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(records), size=(iterations, len(records)))
    intervals: dict[str, list[float]] = {}
    for key, values in metric.resampled(records, draws).items():
        interval = _percentile_interval(values, confidence)
        if interval is not None:
            intervals[key] = [interval[0], interval[1]]
    return intervals


def resample_sums(draws: np.ndarray, columns: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Column sums of every resample: ``out[b] = columns[draws[b]].sum(axis=0)``.

    The building block of vectorised `Metric.resampled` overrides: a metric lays its per-record
    numbers out as columns, gets their sums per resample here and forms its ratios from them.
    Resamples are counted (``np.bincount``) and multiplied, ``chunk`` rows at a time, so memory
    stays bounded for large sample sets.

    Args:
        draws: ``(iterations, n)`` record indices.
        columns: ``(len(records), k)`` numbers per record (or a 1-D array, read as one column).

    Returns:
        ``(iterations, k)`` sums (``(iterations,)`` for 1-D ``columns``).
    """
    values = np.asarray(columns, dtype=float)
    flat = values.ndim == 1
    values = values[:, None] if flat else values
    draws = np.asarray(draws)
    rows = len(values)
    out = np.empty((draws.shape[0], values.shape[1]))
    for start in range(0, draws.shape[0], chunk):
        block = draws[start : start + chunk]
        offsets = (np.arange(len(block)) * rows)[:, None]
        counts = np.bincount((block + offsets).ravel(), minlength=len(block) * rows).reshape(len(block), rows)
        out[start : start + len(block)] = counts @ values
    return out[:, 0] if flat else out


@dataclass(frozen=True)
class PairedDifference:
    """Difference ``current - baseline`` of one value, with its paired bootstrap interval.

    ``p_value`` is the two-sided share of resamples whose difference has the other sign than the
    observed one (a sign test on the bootstrap distribution).
    """

    difference: float
    low: float
    high: float
    p_value: float


def paired_bootstrap(
    metric: Metric,
    baseline: Sequence[Record],
    current: Sequence[Record],
    *,
    iterations: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, PairedDifference]:
    """Paired bootstrap of the difference of each reported value between two runs on the same samples.

    ``baseline[i]`` and ``current[i]`` must score the same sample; each resample draws the same sample
    indices for both runs.
    """
    if len(baseline) != len(current):
        raise ValueError(f"paired bootstrap needs the same samples on both sides ({len(baseline)} != {len(current)})")
    if not baseline or iterations <= 0:
        return {}
    observed_base = metric.aggregate(baseline)
    observed_current = metric.aggregate(current)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(baseline), size=(iterations, len(baseline)))
    base_values = metric.resampled(baseline, draws)
    current_values = metric.resampled(current, draws)
    result: dict[str, PairedDifference] = {}
    for key in sorted(set(base_values) & set(current_values)):
        observed = observed_current[key] - observed_base[key]
        deltas = current_values[key] - base_values[key]
        interval = _percentile_interval(deltas, confidence)
        if interval is None or not math.isfinite(observed):
            continue
        finite = deltas[np.isfinite(deltas)]
        if observed == 0:
            p_value = 1.0
        else:
            opposite = np.mean(finite <= 0) if observed > 0 else np.mean(finite >= 0)
            p_value = float(min(1.0, 2.0 * opposite))
        result[key] = PairedDifference(observed, interval[0], interval[1], p_value)
    return result


__all__ = ["PairedDifference", "bootstrap_intervals", "paired_bootstrap", "resample_sums"]
