"""Synthetic run folders (results.json + samples logs) written directly, for report tests and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def task_result(
    metrics: Mapping[str, float | None],
    *,
    higher: Mapping[str, bool] | None = None,
    n_samples: int = 10,
    n_failed: int = 0,
    failures: Mapping[str, int] | None = None,
    metric_configs: Sequence[Mapping[str, Any]] = (),
    intervals: Mapping[str, list[float]] | None = None,
    kind: str = "vqa",
    family: str = "synthetic",
) -> dict[str, Any]:
    """One task's entry of results.json."""
    return {
        "metrics": dict(metrics),
        "intervals": dict(intervals or {}),
        "n_samples": n_samples,
        "n_failed": n_failed,
        "failures": dict(failures or {}),
        "config": {
            "family": family,
            "kind": kind,
            "prompt_template": "{question}",
            "retry_prompts": [],
            "generation": {"max_new_tokens": 10},
            "want_probes": False,
            "options": {},
            "metrics": [dict(config) for config in metric_configs],
        },
        "data_hashes": {"annotations": "0" * 64},
        "fingerprint": "f" * 64,
        "definitions": {},
        "higher_is_better": dict(higher if higher is not None else dict.fromkeys(metrics, True)),
    }


def write_run(
    folder: Path,
    tasks: Mapping[str, dict[str, Any]],
    *,
    model: str = "synthetic",
    args: str = "",
    fingerprint: str = "a" * 64,
    samples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    groups: Mapping[str, Mapping[str, float | None]] | None = None,
) -> Path:
    """Write ``folder/results.json`` and ``folder/samples/<task>.jsonl``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "schema_version": 1,
        "harness_version": "0.1.0",
        "git_commit": None,
        "seed": 0,
        "limit": None,
        "model": {"name": model, "args": args, "options": {}, "fingerprint": fingerprint},
        "tasks": dict(tasks),
        "groups": dict(groups or {}),
        "runtime": {"command": f"run_eval.py --model {model}"},
    }
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    for task, rows in (samples or {}).items():
        (folder / "samples").mkdir(exist_ok=True)
        with (folder / "samples" / f"{task}.jsonl").open("w") as stream:
            for row in rows:
                stream.write(json.dumps(row) + "\n")
    return folder


def sample_row(
    index: int,
    *,
    scores: Mapping[str, Any] | None = None,
    text: str = "",
    target: Mapping[str, Any] | None = None,
    error: str | None = None,
    image: str = "missing.jpg",
    masks: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One line of a samples log."""
    return {
        "index": index,
        "sample_id": f"id{index:05d}",
        "image": image,
        "prompt": f"question {index}",
        "target": dict(target or {}),
        "prediction": None if error else {"text": text, "masks": list(masks), "phrases": []},
        "scores": {} if error else dict(scores or {}),
        "error": error,
    }


__all__ = ["sample_row", "task_result", "write_run"]
