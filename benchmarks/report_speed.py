"""Benchmark: the per-run report for 10,000 samples (target: written in <= 30 s, drill-down usable).

Builds a synthetic referring-segmentation run shaped like RefCOCO val (10,000 sentences on 1,500
COCO-sized 640x480 JPEG images, a ground-truth and a predicted mask per sample, cIoU/gIoU/P@x
values), then times ``write_run_report`` cold (thumbnails made) and warm (thumbnails reused, as after
``run_eval.py score``), reports the sizes of what the page loads, and, when /usr/bin/chromium exists,
times the drill-down in headless Chromium: page ready, next page, sort 10,000 rows, open a sample.

    python benchmarks/report_speed.py [--samples 10000] [--images 1500] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as coco_mask

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "reports")]

from reports import write_run_report  # noqa: E402

HEIGHT, WIDTH = 480, 640
TASK = "refcoco_like_val"


def polygon(cx: float, cy: float, rx: float, ry: float, sides: int = 24) -> list[float]:
    angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    return [float(v) for pair in zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles), strict=True) for v in pair]


def rle(points: list[float]) -> dict:
    encoded = coco_mask.frPyObjects([points], HEIGHT, WIDTH)[0]
    return {"size": [HEIGHT, WIDTH], "counts": encoded["counts"].decode("ascii")}


def build_run(folder: Path, samples: int, images: int, seed: int = 0) -> Path:
    """Write the synthetic run folder (images, results.json, samples log)."""
    rng = np.random.default_rng(seed)
    image_folder = folder / "images"
    image_folder.mkdir(parents=True)
    for number in range(images):
        picture = Image.new("RGB", (WIDTH, HEIGHT), tuple(int(v) for v in rng.integers(0, 255, 3)))
        draw = ImageDraw.Draw(picture)
        for _ in range(6):
            x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
            draw.ellipse([x, y, x + int(rng.integers(30, 200)), y + int(rng.integers(30, 200))],
                         fill=tuple(int(v) for v in rng.integers(0, 255, 3)))  # fmt: skip
        picture.save(image_folder / f"COCO_val2014_{number:012d}.jpg", quality=90)
    rows, ious = [], []
    for index in range(samples):
        cx, cy = rng.uniform(120, 520), rng.uniform(100, 380)
        rx, ry = rng.uniform(30, 110), rng.uniform(30, 90)
        truth = rle(polygon(cx, cy, rx, ry))
        shift = rng.uniform(0, 60)
        predicted = rle(polygon(cx + shift, cy - shift / 2, rx * rng.uniform(0.7, 1.3), ry))
        truth_native = {"size": truth["size"], "counts": truth["counts"].encode()}
        predicted_native = {"size": predicted["size"], "counts": predicted["counts"].encode()}
        intersection = int(coco_mask.area(coco_mask.merge([truth_native, predicted_native], intersect=True)))
        union = int(coco_mask.area(coco_mask.merge([truth_native, predicted_native])))
        ious.append(intersection / union)
        rows.append(
            {
                "index": index,
                "sample_id": f"{index // 3}:{index}",
                "image": str(image_folder / f"COCO_val2014_{index % images:012d}.jpg"),
                "prompt": f"Please segment the object number {index} on the left of the red thing.",
                "target": {"mask": truth},
                "prediction": {"text": "Sure, it is [SEG].", "masks": [predicted], "phrases": [], "probes": []},
                "scores": {"refseg": {"intersection": intersection, "union": union, "iou": intersection / union}},
                "error": None,
            }
        )
    values = np.asarray(ious)
    metrics = {"cIoU": float(values.mean()), "gIoU": float(values.mean())}
    metrics.update({f"P@{t}": float((values >= t).mean()) for t in (0.5, 0.6, 0.7, 0.8, 0.9)})
    task = {
        "metrics": metrics,
        "intervals": {name: [value - 0.01, value + 0.01] for name, value in metrics.items()},
        "n_samples": samples,
        "n_failed": 0,
        "failures": {},
        "config": {"family": "refcoco", "kind": "referring_segmentation", "metrics": [{"name": "refseg"}]},
        "data_hashes": {"refs": "0" * 64},
        "fingerprint": "f" * 64,
        "definitions": {},
        "higher_is_better": dict.fromkeys(metrics, True),
    }
    results = {
        "schema_version": 1,
        "harness_version": "0.1.0",
        "git_commit": None,
        "seed": 0,
        "limit": None,
        "model": {"name": "synthetic", "args": "", "options": {}, "fingerprint": "a" * 64},
        "tasks": {TASK: task},
        "groups": {},
    }
    run = folder / "run"
    (run / "samples").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(results))
    with (run / "samples" / f"{TASK}.jsonl").open("w") as stream:
        for row in rows:
            stream.write(json.dumps(row) + "\n")
    return run


def folder_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def browse(run: Path, samples: int) -> dict[str, float]:
    """Drill-down timings in headless Chromium (milliseconds)."""
    from chromium_driver import Chromium

    drill = "document.querySelector('div.drill').drill"
    timings = {}
    with Chromium(width=1280, height=900, timeout=120) as browser:
        start = time.perf_counter()
        browser.open(run / "report.html")
        browser.wait_for("document.documentElement.dataset.ready === 'true'", timeout=120)
        timings["page ready (load, parse index, render 50 rows with overlays)"] = 1000 * (time.perf_counter() - start)

        def measure(action: str) -> float:
            timed = f"const t = performance.now(); {action}; return performance.now() - t;"
            return browser.evaluate(f"(async () => {{ {timed} }})()")

        timings["next page (50 rows, new detail chunk, overlays)"] = measure(
            f"{drill}.state.page = 37; await {drill}.render()"
        )
        timings[f"sort {samples:,} rows by IoU + render page 1"] = measure(f"await {drill}.sortBy('value:iou')")
        timings[f"sort {samples:,} rows by prompt text + render"] = measure(f"await {drill}.sortBy('prompt')")
        timings[f"filter {samples:,} rows by text + render"] = measure(
            f"{drill}.state.filter = 'number 99'; {drill}.state.page = 0; await {drill}.render()"
        )
        timings["open a sample's details (full-resolution overlay)"] = measure(
            "document.querySelector('tr.sample').click(); await new Promise(r => {"
            " const w = () => document.querySelector('tr.detail pre') ? r() : setTimeout(w, 5); w(); })"
        )
        if browser.problems:
            raise RuntimeError(f"browser problems: {browser.problems}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=1_500)
    parser.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="attreval-report-bench-"))
    try:
        start = time.perf_counter()
        run = build_run(base, args.samples, args.images)
        os.sync()  # flush the freshly written images, so that their write-back does not slow the timed part
        built = time.perf_counter() - start
        print(f"synthetic run: {args.samples} samples, {args.images} images ({built:.1f} s to build)")
        for label in ("cold (thumbnails written)", "warm (thumbnails reused)"):
            start = time.perf_counter()
            write_run_report(run)
            print(f"write_run_report {label}: {time.perf_counter() - start:.2f} s")
        data = run / "report_files" / "data" / TASK
        chunks = sorted(data.glob("chunk-*.js"))
        print(f"report.html: {(run / 'report.html').stat().st_size / 1e3:.0f} kB; index.js: "
              f"{(data / 'index.js').stat().st_size / 1e6:.2f} MB; {len(chunks)} detail chunks, largest "
              f"{max(c.stat().st_size for c in chunks) / 1e3:.0f} kB; thumbnails "
              f"{folder_size(run / 'report_files' / 'images') / 1e6:.1f} MB; report_files "
              f"{folder_size(run / 'report_files') / 1e6:.1f} MB")  # fmt: skip
        if Path("/usr/bin/chromium").exists():
            for label, milliseconds in browse(run, args.samples).items():
                print(f"chromium: {label}: {milliseconds:.0f} ms")
        else:
            print("chromium: /usr/bin/chromium absent, drill-down timings skipped")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
