"""The seg-token semantic analysis at 10,000 samples (`reports.analysis.analyse_task`).

``python benchmarks/seg_semantics.py [--samples 10000] [--layers 25] [--iterations 1000]`` builds samples-log
rows in memory shaped like a LIRA RefCOCO run with probes (LIRA's 80-word category and 14-word colour
lists with random logits, one probe per sample, per-layer word logits for ``--layers`` hidden states,
random per-sample IoU), then times the whole analysis: probe scoring, Spearman and Pearson with
``--iterations`` bootstrap resamples for every measure and every layer, rank bins. Prints a Markdown row.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.vocabulary import WORD_LISTS
from reports.analysis import analyse_task

TASK = {"config": {"metrics": [{"name": "refseg", "protocol": "generation"}]}}


def rows(samples: int, layers: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    categories, colours = WORD_LISTS["category"], WORD_LISTS["color"]
    found = []
    for index in range(samples):
        objects = dict(zip(categories, rng.normal(size=len(categories)).tolist(), strict=True))
        colour = dict(zip(colours, rng.normal(size=len(colours)).tolist(), strict=True))
        probe = {
            "position": 0,
            "word_logits": {"objects": objects, "colors": colour},
            "layer_word_logits": [{"objects": objects}] * layers,
        }
        union = int(rng.integers(100, 10_000))
        found.append(
            {
                "index": index,
                "sample_id": str(index),
                "target": {"category": str(rng.choice(categories[:20])), "attributes": {"color": ["red"]}},
                "prediction": {"text": "[SEG]", "probes": [probe]},
                "scores": {"refseg": {"intersection": int(rng.integers(0, union)), "union": union, "has_mask": True}},
                "error": None,
            }
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=25)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    data = rows(args.samples, args.layers)
    start = time.perf_counter()
    analysis = analyse_task("refcoco_val", TASK, data, iterations=args.iterations, seed=0)
    seconds = time.perf_counter() - start
    assert analysis is not None and len(analysis.samples) == args.samples
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| samples | layers | resamples | correlations | analysis s | peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    count = len(analysis.correlations) + len(analysis.layers)
    print(f"| {args.samples} | {args.layers} | {args.iterations} | {count} | {seconds:.1f} | {peak:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
