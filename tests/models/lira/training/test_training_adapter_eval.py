"""Acceptance of issue 9: weights exported by a `lira-tiny` training run load into the LIRA adapter
(`--model-args weights=PATH` on top of its seeded random base) and run `run_eval.py` on the mini benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tiny_data import tiny_overrides, write_config

from models.lira.training.config import load_config
from models.lira.training.trainer import run_training

REPO = Path(__file__).resolve().parents[4]


def _run_eval(mini: Path, output: Path, model_args: str) -> dict:
    command = [
        sys.executable, "run_eval.py", "--model", "lira-tiny", "--model-args", model_args,
        "--tasks", "refcoco_val,gcg_val", "--limit", "2", "--data-root", str(mini), "--output-dir", str(output),
        "--no-progress", "--bootstrap-iters", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads((output / "results.json").read_text())


def test_exported_weights_evaluate_on_the_mini_benchmark(data_root: Path, tmp_path: Path) -> None:
    from dataset_builders.mini import build

    values = tiny_overrides(data_root, tmp_path / "run", "stage2")
    values["model"]["random_init_seed"] = 0  # the adapter's seed
    values |= {"optim": {"lr": 1.0e-3}, "batch": {"per_device": 1, "accumulation": 2}, "export_name": "tiny.pth"}
    config = load_config(str(write_config(tmp_path / "stage2.yaml", "stage2", values)), ["max_steps=4"])
    result = run_training(config)
    assert result.export is not None and result.export.is_file()

    mini = build(tmp_path / "mini")
    trained = _run_eval(mini, tmp_path / "eval", f"seed=0,weights={result.export}")
    base = _run_eval(mini, tmp_path / "base", "seed=0")
    assert set(trained["tasks"]) == {"refcoco_val", "gcg_val"}
    assert all(task["n_failed"] == 0 for task in trained["tasks"].values())
    assert trained["model"]["fingerprint"] != base["model"]["fingerprint"]  # the weights are part of the model
