"""Command line: `python -m models.lira.training.train --config stage2 [--set key=value ...]`.

One process: `python -m models.lira.training.train --config stage2 ...`
Several GPUs: `torchrun --nproc_per_node 8 -m models.lira.training.train --config stage2 ...`
(or `accelerate launch --num_processes 8 -m models.lira.training.train ...`).

Every config value can be overridden with `--set section.key=value` (the value is read as YAML); the common ones
also have flags. `--resume` continues the run in `--output-dir` from its latest checkpoint (or `--resume PATH` from a
given one); a run folder that already holds checkpoints is never overwritten without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from harness.errors import UserError
from models.lira.training.config import load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.lira.training.train",
        description="Train LIRA (stage 1: projector pretraining; stage 2: fine-tuning) and export the weights.",
    )
    parser.add_argument("--config", required=True, help="configs/<NAME>.yaml (stage1, stage2, ...) or a YAML path")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. optim.lr=1e-4 (repeatable)",
    )
    parser.add_argument("--output-dir", help="run folder (config output_dir)")
    parser.add_argument("--seed", type=int, help="config seed")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (config max_steps)")
    parser.add_argument("--strategy", choices=["ddp", "fsdp", "deepspeed"], help="distributed.strategy")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="config device")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the run folder's latest checkpoint, or from CHECKPOINT",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    for flag, key in (
        ("output_dir", "output_dir"),
        ("seed", "seed"),
        ("max_steps", "max_steps"),
        ("strategy", "distributed.strategy"),
        ("device", "device"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config, overrides)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
            return 0
        from models.lira.training.trainer import run_training

        main_rank = os.environ.get("RANK", "0") == "0"
        if main_rank:
            output = Path(config.output_dir)
            output.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(output / "train.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger().addHandler(handler)
        else:
            logging.getLogger().setLevel(logging.WARNING)
        command = shlex.join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)])
        result = run_training(config, resume=args.resume, command=command)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if main_rank:
        print(f"{result.steps}/{result.total_steps} steps; run folder {result.output_dir}; weights {result.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
