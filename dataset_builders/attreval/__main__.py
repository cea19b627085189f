"""``python -m dataset_builders.attreval --data-root DIR --dataset refcoco --split val --out OUT [--seed S]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dataset_builders.attreval import DEFAULT_SPLIT_BY, build
from dataset_builders.attreval.scene import Rules
from harness.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builders.attreval",
        description="Build AttrEval (QA and segmentation tracks) from RefCOCO-style annotations and COCO images.",
    )
    parser.add_argument("--data-root", type=Path, required=True, help="data folder in LIRA's (or LISA's) layout")
    parser.add_argument("--dataset", choices=sorted(DEFAULT_SPLIT_BY), default="refcoco")
    parser.add_argument("--split", default="val", help="split, or several joined by commas (default val)")
    parser.add_argument("--split-by", default=None, help="REFER partition (default unc; umd for refcocog)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default DATA_ROOT/attreval/DATASET_SPLIT)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the hard negatives (default 0)")
    parser.add_argument(
        "--balance", choices=("min", "none"), default="min", help="cut every attribute type to the rarest (min)"
    )
    parser.add_argument("--images", type=Path, default=None, help="COCO train2014 folder (default: the layout's)")
    parser.add_argument("--no-datasets", action="store_true", help="skip the datasets/ export")
    parser.add_argument(
        "--min-color-share",
        type=float,
        default=Rules.min_color_share,
        help=f"share of mask pixels that confirms a colour word (default {Rules.min_color_share})",
    )
    args = parser.parse_args(argv)
    splits = [split.strip() for split in args.split.split(",") if split.strip()]
    out = args.out or args.data_root / "attreval" / f"{args.dataset}_{'_'.join(splits)}"
    start = time.perf_counter()
    try:
        result = build(
            args.data_root,
            out,
            dataset=args.dataset,
            splits=splits,
            split_by=args.split_by,
            seed=args.seed,
            balance=args.balance,
            rules=Rules(min_color_share=args.min_color_share),
            images=args.images,
            export_datasets=not args.no_datasets,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = result.summary["counts"]
    rejected = sum(item["count"] for item in result.summary["rejected"])
    print(
        f"AttrEval {args.dataset} {','.join(splits)}: {table['qa_questions']} questions "
        f"({table['qa_questions'] // 2} pairs), {table['seg_expressions']} segmentation expressions, "
        f"{rejected} candidates rejected (see {result.out / 'DATASHEET.md'}); "
        f"written to {result.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
