"""``python -m dataset_builders.synthetic --output DIR --scenes N [--seed S] [--size PIXELS]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dataset_builders.synthetic import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataset_builders.synthetic", description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="target folder (created)")
    parser.add_argument("--scenes", type=int, default=1000, help="number of scenes (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    args = parser.parse_args(argv)
    if args.scenes < 1 or args.size < 24:
        print("error: --scenes must be at least 1 and --size at least 24", file=sys.stderr)
        return 2
    if args.output.exists() and any(args.output.iterdir()):
        print(f"error: {args.output} is not empty; choose a new --output", file=sys.stderr)
        return 2
    start = time.perf_counter()
    build(args.output, args.scenes, args.seed, args.size)
    print(f"{args.scenes} synthetic scenes written to {args.output} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
