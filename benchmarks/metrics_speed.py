"""Referring-segmentation scoring speed: the RLE metric against a naive decode-and-count loop, same run.

Scores 10,834 synthetic predictions (the number of RefCOCO val sentences) with 480x640 masks: targets are
the exactly-one-coverage masks of 1-3 random polygons; 90% of the predictions are the same polygons with
jittered outlines, 7% another polygon, 3% have no mask. The metric path is what the runner does per
sample (``score`` with validation of both masks, then ``add``) plus ``compute``; the naive path decodes both
masks and counts intersection and union with numpy, once as GLaMM's ``compute_iou`` counts
(``np.logical_and``/``np.logical_or`` then ``np.sum``) and once tuned (boolean operators and
``np.count_nonzero``). All must give the same cIoU and gIoU. The paths alternate every ``--chunk`` samples, so that all
see the same machine load (this machine is shared); the pass is repeated ``--repeats`` times and the best
wall time of each path is reported, with its CPU time. Targets: >= 20x faster than a naive loop and <= 2 s.

    python benchmarks/metrics_speed.py [--samples 10834] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import masks
from harness.metrics.refseg import ReferringSegmentation, refer_target_mask
from harness.stats import bootstrap_intervals
from harness.types import Prediction, Sample

HEIGHT, WIDTH = 480, 640


def polygon(rng: np.random.Generator) -> list[float]:
    corners = int(rng.integers(5, 14))
    centre_y, centre_x = rng.uniform(40, HEIGHT - 40), rng.uniform(40, WIDTH - 40)
    radius = rng.uniform(15, 180)
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = radius * rng.uniform(0.5, 1.0, corners)
    return list(np.c_[centre_x + radii * np.cos(angles), centre_y + radii * np.sin(angles)].ravel())


def make_data(count: int, seed: int) -> tuple[list[Sample], list[Prediction]]:
    rng = np.random.default_rng(seed)
    samples, predictions = [], []
    for index in range(count):
        polygons = [polygon(rng) for _ in range(int(rng.integers(1, 4)))]
        target = refer_target_mask(polygons, HEIGHT, WIDTH)
        samples.append(Sample(sample_id=str(index), image="x.jpg", target={"mask": target}, image_size=(HEIGHT, WIDTH)))
        draw = rng.random()
        if draw < 0.03:
            predictions.append(Prediction(text="no mask"))
            continue
        jittered = [list(np.asarray(p) + rng.normal(0, 4, len(p))) for p in polygons]  # outline off by pixels
        guessed = [polygon(rng)] if draw < 0.10 else jittered  # a wrong object, or the right one
        encoded = coco_mask.merge(coco_mask.frPyObjects(guessed, HEIGHT, WIDTH))
        predictions.append(
            Prediction(text="[SEG]", masks=(masks.validate({**encoded, "counts": encoded["counts"].decode()}),))
        )
    return samples, predictions


class Clock:
    """Wall-clock and CPU seconds spent inside ``with clock:`` blocks, summed."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def glamm_counts(sample: Sample, prediction: Prediction) -> tuple[int, int] | None:
    """Naive: decode both masks, count as GLaMM's compute_iou does (np.logical_and/or, then np.sum)."""
    if not prediction.masks:
        return None
    truth, guess = masks.decode(sample.target["mask"]), masks.decode(prediction.masks[0])
    return int(np.sum(np.logical_and(truth, guess))), int(np.sum(np.logical_or(truth, guess)))


def tuned_counts(sample: Sample, prediction: Prediction) -> tuple[int, int] | None:
    """Naive, tuned: decode both masks, boolean operators and np.count_nonzero."""
    if not prediction.masks:
        return None
    truth = masks.decode(sample.target["mask"]).astype(bool)
    guess = masks.decode(prediction.masks[0]).astype(bool)
    return int(np.count_nonzero(truth & guess)), int(np.count_nonzero(truth | guess))


def values_of(pairs: list[tuple[int, int] | None]) -> dict[str, float]:
    """cIoU and gIoU (generation protocol) from per-sample (I, U), None for a missing mask."""
    counted = [pair for pair in pairs if pair is not None]
    ious = [0.0 if pair is None else pair[0] / (pair[1] + 1e-5) + (pair[1] == 0) for pair in pairs]
    return {
        "cIoU": sum(i for i, _ in counted) / (sum(u for _, u in counted) + 1e-10),
        "gIoU": sum(ious) / len(ious),
    }


NAIVE = {"naive (GLaMM-style counting)": glamm_counts, "naive, tuned (count_nonzero)": tuned_counts}


def one_pass(samples: list[Sample], predictions: list[Prediction], chunk: int) -> dict[str, tuple[Clock, dict]]:
    """Every path over all samples, alternating every ``chunk`` samples so that all see the same load."""
    clocks = {name: Clock() for name in ["RLE metric", *NAIVE]}
    metric = ReferringSegmentation()
    pairs: dict[str, list[tuple[int, int] | None]] = {name: [] for name in NAIVE}
    for start in range(0, len(samples), chunk):
        block = range(start, min(start + chunk, len(samples)))
        with clocks["RLE metric"]:
            for index in block:
                metric.add(index, metric.score(samples[index], predictions[index]))
        for name, count in NAIVE.items():
            with clocks[name]:
                pairs[name].extend(count(samples[index], predictions[index]) for index in block)
    results = {}
    with clocks["RLE metric"]:
        results["RLE metric"] = (clocks["RLE metric"], metric.compute())
    for name in NAIVE:
        with clocks[name]:
            results[name] = (clocks[name], values_of(pairs[name]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10834)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=250, help="samples per alternation between the paths")
    args = parser.parse_args()

    start = time.perf_counter()
    samples, predictions = make_data(args.samples, args.seed)
    print(f"built {args.samples} samples ({HEIGHT}x{WIDTH}) in {time.perf_counter() - start:.1f} s")
    passes = [one_pass(samples, predictions, args.chunk) for _ in range(args.repeats)]
    for results in passes:
        expected = results["RLE metric"][1]
        for name in NAIVE:
            for key in ("cIoU", "gIoU"):
                if abs(results[name][1][key] - expected[key]) > 1e-12:
                    raise SystemExit(f"{key} differs: RLE metric {expected[key]!r} vs {name} {results[name][1][key]!r}")

    metric = ReferringSegmentation()
    for index, (sample, prediction) in enumerate(zip(samples, predictions, strict=True)):
        metric.add(index, metric.score(sample, prediction))
    start = time.perf_counter()
    intervals = bootstrap_intervals(metric, metric.records(), iterations=1000, seed=0)
    bootstrap_seconds = time.perf_counter() - start

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    values = passes[0]["RLE metric"][1]
    print(f"values: cIoU {values['cIoU']:.6f}, gIoU {values['gIoU']:.6f} (identical in every path)")
    best = {name: min((results[name][0] for results in passes), key=lambda c: c.wall) for name in passes[0]}
    fast = best["RLE metric"]
    for name, clock in best.items():
        walls = [round(results[name][0].wall, 3) for results in passes]
        line = f"{name:30s} {clock.wall:7.3f} s wall {clock.cpu:7.3f} s CPU  (passes: {walls})"
        if clock is not fast:
            line += f"  -> RLE metric {clock.wall / fast.wall:.1f}x faster ({clock.cpu / fast.cpu:.1f}x in CPU time)"
        print(line)
    print(f"RLE metric: {fast.wall / args.samples * 1e6:.1f} us per sample; <= 2 s: {fast.wall <= 2.0}")
    print(f"bootstrap, 1000 resamples of all {len(intervals)} values: {bootstrap_seconds:.3f} s")


if __name__ == "__main__":
    main()
