"""Metrics: per-sample records aggregated once, with a registry so stored runs can be re-scored."""

from __future__ import annotations

from typing import Any

from harness.metrics.base import Metric, Record
from harness.registry import Registry


def _validate_metric(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Metric)):
        raise TypeError(f"metric {name!r} must be a Metric subclass, got {obj!r}")


METRICS: Registry[type[Metric]] = Registry("metric", _validate_metric)
"""Metric name (as in ``Metric.name`` and ``results.json`` configs) -> class."""

for _name, _target in (
    ("refseg", "harness.metrics.refseg:ReferringSegmentation"),
    ("refseg_grouped", "harness.metrics.refseg:GroupedReferringSegmentation"),
    ("pope", "harness.metrics.pope:Pope"),
    ("chair", "harness.metrics.chair:Chair"),
    ("captions", "harness.metrics.captions:CaptionScores"),
    ("gcg_masks", "harness.metrics.gcg:GcgMasks"),
    ("gcg_recall", "harness.metrics.gcg:GcgRecall"),
    ("attreval_qa", "harness.metrics.attreval:AttrEvalQA"),
):
    METRICS.register_lazy(_name, _target)


def build_metric(config: dict[str, Any]) -> Metric:
    """Rebuild a metric from the ``config`` it recorded in ``results.json``."""
    options = {key: value for key, value in config.items() if key != "name"}
    return METRICS.get(config["name"])(**options)


__all__ = ["METRICS", "Metric", "Record", "build_metric"]
