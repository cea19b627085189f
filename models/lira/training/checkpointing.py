"""Resumable training checkpoints: `OUTPUT_DIR/checkpoints/step-00000500/`.

A checkpoint folder holds the trainable tensors (`trainable.safetensors`, float32), the optimizer state
(`optimizer.pt`, or DeepSpeed's own files under `deepspeed/`), the loss-scaler state (`engine.json`), the run's
position (`state.json`: step, iterations done, epoch, the sampler's position, samples skipped so far, the config
and its fingerprint) and each rank's random-number generator states (`rng-rank<r>.pt`).

It is written into `step-N.tmp/` and renamed when complete, and `checkpoints/latest` names the newest one, so a run
killed while saving leaves the previous checkpoint intact. The newest `keep` folders are kept.

Resuming rebuilds the model from the config (frozen weights come from the same files or seed), loads the trainable
tensors and optimizer state, and restarts the sampler after the last sample of the checkpoint's step. Each
iteration reseeds its random draws (LoRA dropout, loss point sampling) from (seed, epoch, position of its first
sample), so the resumed run continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import UserError
from models.lira.training.engine import TRAINABLE_FILE, TrainingEngine
from models.lira.training.runtime import Runtime

STATE_FILE = "state.json"
LATEST_FILE = "latest"


def checkpoint_root(output_dir: Path) -> Path:
    return output_dir / "checkpoints"


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) generator states, as tensors and plain values."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python_version": version,
        "python_state": torch.tensor(internal, dtype=torch.int64),
        "python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
        "numpy_kind": kind,
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_position": int(position),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached": float(cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    gauss = state["python_gauss"].tolist()
    random.setstate((state["python_version"], tuple(state["python_state"].tolist()), gauss[0] if gauss else None))
    np.random.set_state(
        (
            state["numpy_kind"],
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_position"],
            state["numpy_has_gauss"],
            state["numpy_cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    output_dir: Path, engine: TrainingEngine, runtime: Runtime, state: dict[str, Any], keep: int
) -> Path:
    """Write the checkpoint of `state["step"]` (collective: every rank calls it)."""
    root = checkpoint_root(output_dir)
    name = f"step-{state['step']:08d}"
    final, partial = root / name, root / f"{name}.tmp"
    if runtime.is_main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    runtime.barrier()
    engine.save(partial)
    torch.save(rng_state(), partial / f"rng-rank{runtime.rank}.pt")
    if runtime.is_main:
        (partial / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    runtime.barrier()
    if runtime.is_main:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        pointer = root / f"{LATEST_FILE}.tmp"
        pointer.write_text(name + "\n", encoding="utf-8")
        pointer.replace(root / LATEST_FILE)
        done = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    runtime.barrier()
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    root = checkpoint_root(output_dir)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        folder = root / pointer.read_text(encoding="utf-8").strip()
        if (folder / STATE_FILE).is_file():
            return folder
    done = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file() and not p.name.endswith(".tmp"))
    return done[-1] if done else None


def read_checkpoint_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"checkpoint {folder}: {STATE_FILE} cannot be read ({error})") from None


def load_rng(folder: Path, rank: int) -> None:
    path = folder / f"rng-rank{rank}.pt"
    if path.is_file():
        set_rng_state(torch.load(path, weights_only=True))


__all__ = [
    "STATE_FILE",
    "TRAINABLE_FILE",
    "checkpoint_root",
    "latest_checkpoint",
    "load_rng",
    "read_checkpoint_state",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
