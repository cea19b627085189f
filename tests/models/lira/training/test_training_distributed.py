"""Two CPU processes (gloo, launched with torchrun) with accumulation A take the same optimizer steps as one process
with accumulation 2A: same samples per step, same learning rates, same losses and weights up to float rounding
(the gradient all-reduce adds in another order)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_data import tiny_overrides, write_config

from models.lira.training.config import load_config
from models.lira.training.trainer import run_training

REPO = Path(__file__).resolve().parents[4]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config_file(data_root: Path, folder: Path, output: Path, accumulation: int) -> Path:
    values = tiny_overrides(data_root, output, "stage2") | {
        "optim": {"lr": 1.0e-3},
        "batch": {"per_device": 1, "accumulation": accumulation},
        "schedule": {"epochs": 1},
        "checkpoint": {"every_steps": 0, "keep": 1},
        "export_name": "tiny.pth",
    }
    return write_config(folder / f"{output.name}.yaml", "stage2", values)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_with_twice_the_accumulation(data_root: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "models.lira.training.train",
        "--config",
        str(_config_file(data_root, tmp_path, two, accumulation=2)),
    ]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, timeout=600)
    assert finished.returncode == 0, finished.stderr.decode()[-3000:]

    one = tmp_path / "one"
    result = run_training(load_config(str(_config_file(data_root, tmp_path, one, accumulation=4))))
    assert result.steps == 9  # 36 samples, 4 per step

    two_rows, one_rows = _rows(two), _rows(one)
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    assert [row["step"] for row in two_rows] == [row["step"] for row in one_rows] == list(range(1, 10))
    for a, b in zip(two_rows, one_rows, strict=True):
        assert a["samples"] == b["samples"] == 4 and a["text_tokens"] == b["text_tokens"]
        assert a["lr"] == b["lr"]
        assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(b["loss"])
        assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-5 * b["grad_norm"]
    final = "checkpoints/step-00000009/trainable.safetensors"
    two_weights, one_weights = load_file(str(two / final)), load_file(str(one / final))
    assert sorted(two_weights) == sorted(one_weights)
    for name in one_weights:
        torch.testing.assert_close(two_weights[name], one_weights[name], rtol=0, atol=1e-4, msg=name)


@pytest.mark.slow
def test_fsdp_matches_ddp_and_resumes_exactly(data_root: Path, tmp_path: Path) -> None:
    """FSDP (SHARD_GRAD_OP) on two CPU processes: the same steps as DDP, and a run stopped after step 4 and resumed
    ends bit for bit where the uninterrupted FSDP run does."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def launch(output: Path, *extra: str) -> None:
        config = _config_file(data_root, tmp_path, output, accumulation=2)
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            "-m",
            "models.lira.training.train",
            "--config",
            str(config),
            "--strategy",
            *extra,
        ]
        finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, timeout=600)
        assert finished.returncode == 0, finished.stderr.decode()[-3000:]

    launch(tmp_path / "ddp", "ddp")
    launch(tmp_path / "fsdp", "fsdp")
    launch(tmp_path / "resumed", "fsdp", "--max-steps", "4")
    launch(tmp_path / "resumed", "fsdp", "--resume")
    final = "checkpoints/step-00000009/trainable.safetensors"
    ddp, fsdp = load_file(str(tmp_path / "ddp" / final)), load_file(str(tmp_path / "fsdp" / final))
    resumed = load_file(str(tmp_path / "resumed" / final))
    for name in ddp:
        torch.testing.assert_close(fsdp[name], ddp[name], rtol=0, atol=1e-4, msg=name)
        assert torch.equal(resumed[name], fsdp[name]), name


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_two_process_training(data_root: Path, tmp_path: Path) -> None:
    """`accelerate launch` exports the same rank layout as torchrun; the run is the torchrun run bit for bit."""
    pytest.importorskip("accelerate")
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {}
    for launcher, output in (("torchrun", tmp_path / "torchrun"), ("accelerate", tmp_path / "accelerate")):
        config = _config_file(data_root, tmp_path, output, accumulation=2)
        port = str(_free_port())
        if launcher == "torchrun":
            launch = ["torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
        else:
            launch = [
                "accelerate.commands.launch",
                "--multi_gpu",
                "--num_processes",
                "2",
                "--num_machines",
                "1",
                "--mixed_precision",
                "no",
                "--dynamo_backend",
                "no",
                "--main_process_port",
                port,
            ]
        command = [
            sys.executable,
            "-m",
            *launch,
            "-m",
            "models.lira.training.train",
            "--config",
            str(config),
            "--device",
            "cpu",
        ]
        finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, timeout=600)
        assert finished.returncode == 0, finished.stderr.decode()[-3000:]
        assert json.loads((output / "run.json").read_text())["world_size"] == 2
        runs[launcher] = load_file(str(output / "checkpoints/step-00000009/trainable.safetensors"))
    assert all(torch.equal(runs["accelerate"][name], runs["torchrun"][name]) for name in runs["torchrun"])
