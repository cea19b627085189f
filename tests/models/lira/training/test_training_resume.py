"""A run killed mid-epoch (SIGKILL) and resumed ends with the weights of an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_data import tiny_overrides, write_config

from harness.errors import UserError
from models.lira.training.config import load_config
from models.lira.training.trainer import run_training

REPO = Path(__file__).resolve().parents[4]


def _config_file(data_root: Path, folder: Path, output: Path) -> Path:
    values = tiny_overrides(data_root, output, "stage2") | {
        "optim": {"lr": 1.0e-3},
        "batch": {"per_device": 1, "accumulation": 2},
        "schedule": {"epochs": 2},
        "checkpoint": {"every_steps": 2, "keep": 2},
        "export_name": "tiny.pth",
    }
    return write_config(folder / f"{output.name}.yaml", "stage2", values)


def _train_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "models.lira.training.train", "--config", str(config), *extra]


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_killed_run_resumes_to_the_same_weights(data_root: Path, tmp_path: Path) -> None:
    interrupted = tmp_path / "interrupted"
    config_file = _config_file(data_root, tmp_path, interrupted)
    process = subprocess.Popen(
        _train_command(config_file), cwd=REPO, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    latest = interrupted / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, errors = process.communicate()
    assert process.returncode == -signal.SIGKILL, errors.decode()[-2000:]
    assert not (interrupted / "tiny.pth").exists()  # it really stopped before the end
    stopped_at = json.loads((interrupted / "checkpoints" / latest.read_text().strip() / "state.json").read_text())
    assert 2 <= stopped_at["step"] < 18  # mid-way through the first of two epochs (18 steps each)

    with pytest.raises(UserError, match="pass --resume to continue"):  # never overwritten by accident
        run_training(load_config(str(config_file)))
    resumed = subprocess.run(_train_command(config_file, "--resume"), cwd=REPO, env=_environment(), capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]

    straight = tmp_path / "straight"
    torch.manual_seed(123)  # the run must not depend on the global random state it starts from
    result = run_training(load_config(str(_config_file(data_root, tmp_path, straight))))
    assert result.steps == 36

    final = "checkpoints/step-00000036/trainable.safetensors"
    expected, got = load_file(str(straight / final)), load_file(str(interrupted / final))
    assert sorted(expected) == sorted(got)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    exported = torch.load(interrupted / "tiny.pth", weights_only=True)
    reference = torch.load(straight / "tiny.pth", weights_only=True)
    assert all(torch.equal(exported[key], reference[key]) for key in reference)

    rows = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    straight_rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 37))  # rows after the checkpoint were replaced
    assert [row["loss"] for row in rows] == [row["loss"] for row in straight_rows]
    run = json.loads((interrupted / "run.json").read_text())
    assert run["status"] == "finished" and run["resumed_from"].endswith(f"step-{stopped_at['step']:08d}")


def test_resume_refuses_another_configuration(data_root: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    config = load_config(str(_config_file(data_root, tmp_path, output)), ["max_steps=2"])
    run_training(config)
    changed = load_config(str(_config_file(data_root, tmp_path, output)), ["optim.lr=0.5"])
    with pytest.raises(UserError, match=r"another configuration \(sections differing: \['optim'\]\)"):
        run_training(changed, resume=True)
    with pytest.raises(UserError, match="not a training checkpoint folder"):
        run_training(config, resume=str(tmp_path))
