"""The AttrEval builder on 10,000+ synthetic referring expressions (target: at most 60 s on CPU-2c).

``python benchmarks/attreval_builder.py [--scenes 1700] [--data-root DIR]`` writes synthetic scenes
(`dataset_builders.synthetic`: two RefCOCO sentences per shape, 2-4 shapes per scene, the scenes spread
over val, testA and testB) unless ``--data-root`` holds them already, counts the referring expressions of
the three splits, then times one `dataset_builders.attreval.build` over them (reading refs, images and
masks, checking attributes, both tracks, balancing, writing JSONL, REFER files, `datasets` folders and
the datasheet). Prints a Markdown row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_builders.attreval import build as build_attreval
from dataset_builders.synthetic import build as build_synthetic
from tasks.loaders.refer import in_split, load_refs

SPLITS = ("val", "testA", "testB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=1700)
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="attreval-builder-"))
    root = args.data_root or workspace / "synthetic"
    if not (root / "ref_seg").exists():
        start = time.perf_counter()
        build_synthetic(root, args.scenes)
        print(f"wrote {args.scenes} synthetic scenes in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    refs = load_refs(root / "ref_seg/refcoco/refs(unc).p")
    expressions = sum(len(ref.sentences) for ref in refs if any(in_split(ref.split, s) for s in SPLITS))
    if expressions < 10_000:
        print(f"only {expressions} expressions: raise --scenes", file=sys.stderr)
        return 1
    start = time.perf_counter()
    result = build_attreval(root, workspace / "attreval", dataset="refcoco", splits=SPLITS, seed=0)
    seconds = time.perf_counter() - start
    counts = result.summary["counts"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rejected": result.summary["rejected"], "kept": result.summary["kept"]}, indent=1))
    print("| expressions | refs | images | QA questions | seg expressions | build s | ms/expression | peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {expressions} | {result.summary['refs_seen']} | {result.summary['images_seen']} | "
        f"{counts['qa_questions']} | {counts['seg_expressions']} | {seconds:.1f} | "
        f"{1000 * seconds / expressions:.2f} | {peak:.0f} MB |"
    )
    return 0 if seconds <= 60 else 1


if __name__ == "__main__":
    sys.exit(main())
