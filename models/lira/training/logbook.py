"""Per-step metrics of a run: `metrics.jsonl` (one JSON object per optimizer step) and the console progress bar.

Each row: `step`, `iteration` (rank iterations done), `epoch`, `lr`, the mean over the step's iterations and ranks of
`loss`, `lm_loss`, `dice_loss`, `mask_loss`, `projection_loss`, `grad_norm` (before clipping; null when a float16
step was skipped), `samples` and `text_tokens` trained on, `skipped` samples, `seconds` and `tokens_per_second`
(text tokens of all ranks per wall-clock second).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

LOSS_KEYS = ("loss", "lm_loss", "dice_loss", "mask_loss", "projection_loss")


@dataclass
class StepAccumulator:
    """Sums over the iterations of one optimizer step on this rank."""

    losses: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LOSS_KEYS, 0.0))
    iterations: int = 0
    samples: int = 0
    text_tokens: int = 0
    skipped: int = 0

    def add(self, values: dict[str, float], samples: int, text_tokens: int, skipped: int) -> None:
        if samples:
            for key in LOSS_KEYS:
                self.losses[key] += values[key]
            self.iterations += 1
        self.samples += samples
        self.text_tokens += text_tokens
        self.skipped += skipped

    def as_list(self) -> list[float]:
        return [*self.losses.values(), self.iterations, self.samples, self.text_tokens, self.skipped]

    @staticmethod
    def row(summed: list[float]) -> dict[str, Any]:
        """The metrics of a step from `as_list()` summed over ranks."""
        iterations = summed[len(LOSS_KEYS)]
        row: dict[str, Any] = {key: (summed[i] / iterations if iterations else None) for i, key in enumerate(LOSS_KEYS)}
        row["samples"], row["text_tokens"], row["skipped"] = (int(v) for v in summed[len(LOSS_KEYS) + 1 :])
        return row


class MetricsLog:
    """Append-only `metrics.jsonl`; on resume, rows after the checkpoint's step are dropped first."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is None:
            path.write_text("", encoding="utf-8")
        elif path.exists():
            kept = [row for row in read_metrics(path) if row["step"] <= resume_step]
            path.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        clean = {key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in row.items()}
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(clean) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a `metrics.jsonl` (a torn last line from a killed run is ignored)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class Progress:
    """A tqdm bar over optimizer steps with the latest loss, learning rate and tokens per second (rank 0 only)."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar = tqdm(
            total=total, initial=initial, desc="train", unit="step", disable=not enabled, dynamic_ncols=True
        )

    def update(self, row: dict[str, Any]) -> None:
        loss = row.get("loss")
        self.bar.set_postfix_str(
            f"loss {loss:.4f} lr {row['lr']:.3g} tok/s {row['tokens_per_second']:.0f}"
            if loss is not None
            else f"lr {row['lr']:.3g} (no sample)",
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals of a run's rows."""
    rows = list(rows)
    return {
        "steps": len(rows),
        "samples": sum(row["samples"] for row in rows),
        "text_tokens": sum(row["text_tokens"] for row in rows),
        "skipped": sum(row["skipped"] for row in rows),
        "seconds": sum(row["seconds"] for row in rows),
        "first_loss": rows[0]["loss"] if rows else None,
        "last_loss": rows[-1]["loss"] if rows else None,
    }


__all__ = ["LOSS_KEYS", "MetricsLog", "Progress", "StepAccumulator", "read_metrics", "summarise"]
