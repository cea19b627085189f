"""Per-run prediction cache: SQLite in WAL mode, one writer file per rank, written after every batch.

The key of a prediction is sha256(model fingerprint, task fingerprint, sample id), so it does not
depend on the rank or the number of ranks: a run resumed with another world size finds every
finished sample. Failures are kept in their own table with their reason and retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.types import Prediction, prediction_from_dict, to_dict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    key TEXT PRIMARY KEY, task TEXT NOT NULL, sample_id TEXT NOT NULL, prediction TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY, task TEXT NOT NULL, sample_id TEXT NOT NULL, error TEXT NOT NULL, created REAL NOT NULL
);
"""


def prediction_key(model_fingerprint: str, task_fingerprint: str, sample_id: str) -> str:
    """The cache key of one sample's prediction."""
    payload = json.dumps([model_fingerprint, task_fingerprint, sample_id])
    return hashlib.sha256(payload.encode()).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=60.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(_SCHEMA)
    return connection


class PredictionCache:
    """Reads every shard file in ``directory``; writes only ``rank{rank}.sqlite``."""

    def __init__(self, directory: Path, rank: int = 0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._own_path = self.directory / f"rank{rank}.sqlite"
        self._writer = _connect(self._own_path)

    def _lookup(self, table: str, column: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(keys))
        others = [path for path in sorted(self.directory.glob("rank*.sqlite")) if path != self._own_path]
        for path in [self._own_path, *others]:
            connection = self._writer if path == self._own_path else _connect(path)
            try:
                remaining = [key for key in wanted if key not in found]
                for start in range(0, len(remaining), 500):
                    chunk = remaining[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    query = f"SELECT key, {column} FROM {table} WHERE key IN ({marks})"
                    found.update(connection.execute(query, chunk).fetchall())
            finally:
                if connection is not self._writer:
                    connection.close()
        return found

    def get_many(self, keys: Sequence[str]) -> dict[str, Prediction]:
        """Cached predictions of ``keys`` found in any shard."""
        rows = self._lookup("predictions", "prediction", keys)
        return {key: prediction_from_dict(json.loads(text)) for key, text in rows.items()}

    def failures(self, keys: Sequence[str]) -> dict[str, str]:
        """Recorded failure reasons of ``keys`` (from the latest attempt that failed)."""
        return self._lookup("failures", "error", keys)

    def put_many(self, items: Iterable[tuple[str, str, str, Prediction]]) -> None:
        """Store ``(key, task, sample_id, prediction)`` items in one transaction; failed ones go to failures."""
        now = time.time()
        with self._writer:
            for key, task, sample_id, prediction in items:
                if prediction.error is None:
                    self._writer.execute(
                        "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)",
                        (key, task, sample_id, json.dumps(to_dict(prediction), sort_keys=True), now),
                    )
                    self._writer.execute("DELETE FROM failures WHERE key = ?", (key,))
                else:
                    self._writer.execute(
                        "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                        (key, task, sample_id, prediction.error, now),
                    )

    def close(self) -> None:
        """Close the writer connection."""
        self._writer.close()


__all__ = ["PredictionCache", "prediction_key"]
