"""``python -m dataset_builders.mini [--output data/mini]``: build the bundled mini benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataset_builders.mini import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataset_builders.mini", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("data/mini"), help="target folder (default: data/mini)")
    args = parser.parse_args(argv)
    try:
        root = build(args.output)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"mini benchmark written to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
