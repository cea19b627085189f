"""Metric objects: score each sample into a small JSON record, aggregate the records once.

The state of every metric is the mapping ``sample index -> record``. Records merge exactly across
shards and resumed runs (disjoint union), and `compute` always aggregates them in sample order, so the
numbers do not depend on how many ranks produced them. The same records feed the bootstrap intervals.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from harness.types import Prediction, Sample

Record = dict[str, Any]


class Metric(abc.ABC):
    """Base class of all metrics.

    Subclasses implement `score` (one sample -> record; raise `harness.errors.SampleError` on bad
    input) and `aggregate` (records in sample order -> named values), and declare their options as
    constructor keyword arguments passed to ``super().__init__(**options)``; the options are recorded
    in ``results.json`` through `config`.

    Attributes:
        name: the metric family's name, e.g. ``"refseg"``.
        higher_is_better: for each reported value, whether larger is better.
        definitions: a one-line written definition of each reported value, copied into the results.
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[dict[str, bool]] = {}
    definitions: ClassVar[dict[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = options
        self._records: dict[int, Record] = {}

    # -- per sample -----------------------------------------------------------------------------

    @abc.abstractmethod
    def score(self, sample: Sample, prediction: Prediction) -> Record:
        """Score one sample; the record must be JSON-serialisable."""

    def sample_values(self, record: Record) -> dict[str, float]:
        """The per-sample numbers shown in the samples log (default: the record's numeric items)."""
        return {
            key: value
            for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }

    def add(self, index: int, record: Record) -> None:
        """Store the record of the sample at position ``index`` of the task's sample order."""
        if index in self._records:
            raise ValueError(f"{self.name}: sample index {index} was already added")
        self._records[index] = record

    def update(self, index: int, sample: Sample, prediction: Prediction) -> dict[str, float]:
        """Score and store one sample; returns its per-sample values."""
        record = self.score(sample, prediction)
        self.add(index, record)
        return self.sample_values(record)

    # -- aggregate ------------------------------------------------------------------------------

    @abc.abstractmethod
    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        """Reduce records (in sample order) to the reported values."""

    def compute(self) -> dict[str, float]:
        """The reported values over every stored record."""
        return self.aggregate(self.records())

    def records(self) -> list[Record]:
        """Stored records in sample order."""
        return [self._records[index] for index in sorted(self._records)]

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        """Aggregate each row of ``draws`` (indices into ``records``) for the bootstrap.

        Override with a vectorised version when `aggregate` is cheap to express on arrays; return
        an empty dict for metrics whose aggregate is too expensive to repeat (e.g. a Java scorer).
        """
        rows = [self.aggregate([records[i] for i in row]) for row in draws]
        keys = rows[0].keys() if rows else ()
        return {key: np.array([row[key] for row in rows], dtype=float) for key in keys}

    # -- state ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every record."""
        self._records = {}

    def merge(self, other: Metric) -> None:
        """Add the records of ``other`` (same metric, same options, disjoint samples)."""
        if type(other) is not type(self) or other.options != self.options:
            raise ValueError(f"cannot merge {other.config()} into {self.config()}")
        for index, record in other._records.items():
            self.add(index, record)

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the state."""
        return {"config": self.config(), "records": {str(k): v for k, v in self._records.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """Add the records of a snapshot made by `state`."""
        if state["config"] != self.config():
            raise ValueError(f"state of {state['config']} cannot be loaded into {self.config()}")
        for index, record in state["records"].items():
            self.add(int(index), record)

    def config(self) -> dict[str, Any]:
        """Name and options, as recorded in ``results.json``."""
        return {"name": self.name, **self.options}


__all__ = ["Metric", "Record"]
