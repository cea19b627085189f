"""Trained weights → the official LIRA `.pth` layout (`save_lira_pth`, lira-model.md §11.2).

Stage 2 gives the `LIRA-2B.pth` layout (full token embeddings, `output.base_layer`, LoRA pairs, projectors), which
`--model lira-2b --model-args weights=...` evaluates and the original code loads; stage 1 gives the
`lira_2b_pre.pth` layout (`llm.model.tok_embeddings.weight`, `llm.output.weight`, projectors without the
cross-attention), which stage 2 starts from (`model.init_pth`), as the original's `pretrained_pth`.

The model is rebuilt on the CPU from the run's config (frozen weights from the same files or seed), the checkpoint's
trainable tensors are loaded, and the delta is written. Usage:

    python -m models.lira.training.export RUN_DIR [--checkpoint CHECKPOINT_DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from harness.errors import UserError
from models.lira.checkpoint.lira import save_lira_pth
from models.lira.training.checkpointing import latest_checkpoint, read_checkpoint_state
from models.lira.training.config import TrainConfig, config_from_mapping
from models.lira.training.engine import load_trainable_state
from models.lira.training.modeling import build_training_model


def export_checkpoint(config: TrainConfig, checkpoint: Path, out: Path) -> Path:
    """Write the official-layout `.pth` of `checkpoint` (a folder written by the trainer) to `out`."""
    model, _ = build_training_model(config, torch.device("cpu"))
    load_trainable_state(model, checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".tmp")
    save_lira_pth(model, partial)
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.lira.training.export",
        description="Write a training checkpoint's weights in the official LIRA .pth layout.",
    )
    parser.add_argument("run_dir", type=Path, help="the run's output folder")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint folder (default: the run's latest)")
    parser.add_argument("--out", type=Path, help="output file (default: RUN_DIR/<export_name of the config>)")
    args = parser.parse_args(argv)
    try:
        checkpoint = args.checkpoint or latest_checkpoint(args.run_dir)
        if checkpoint is None:
            raise UserError(f"{args.run_dir} holds no training checkpoint")
        config = config_from_mapping(read_checkpoint_state(checkpoint)["config"], str(checkpoint))
        out = args.out or args.run_dir / config.export_name
        export_checkpoint(config, checkpoint, out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
