"""`python -m dataset_builders.ilvc_crops --data-root data --out data/ilvc_crops`: render LIRA's ILVC training crops
and write the `ref_seg_high/` and `*_highlight_bg.json` annotation copies that point at them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataset_builders.ilvc_crops import SOURCES, build_crops
from harness.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataset_builders.ilvc_crops", description=__doc__)
    parser.add_argument("--data-root", type=Path, default=Path("data"), help="LIRA's data/ folder (default: data)")
    parser.add_argument(
        "--out", type=Path, default=Path("data/ilvc_crops"), help="crop folder (default: data/ilvc_crops)"
    )
    parser.add_argument(
        "--sources", default=",".join(SOURCES), help=f"comma-separated subset of {','.join(SOURCES)} (default: all)"
    )
    parser.add_argument(
        "--split", default="train", help="REFER split whose referred objects get crops (default: train)"
    )
    parser.add_argument("--format", choices=["png", "jpg"], default="png", help="crop file format (default: png)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: 0, render in this one)")
    args = parser.parse_args(argv)
    sources = tuple(name.strip() for name in args.sources.split(",") if name.strip())
    try:
        manifest = build_crops(
            args.data_root, args.out, sources, split=args.split, image_format=args.format, workers=args.workers
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for source, counts in manifest["counts"].items():
        listed = ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))
        print(f"{source}: {listed or 'nothing to render'} -> {manifest['annotations'][source]}")
    print(f"manifest: {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
