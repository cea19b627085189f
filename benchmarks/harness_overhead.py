"""Harness overhead: the oracle adapter over 10,000 synthetic samples with 480x640 masks.

Measures milliseconds of harness time per sample (everything but the adapter's own calls: loading,
request building, cache writes and reads, scoring, bootstrap, writing the run folder) and peak RSS.
Target: <= 1 ms per sample and <= 500 MB.

    python benchmarks/harness_overhead.py [--samples 10000] [--out /tmp/overhead]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import masks
from harness.metrics.base import Metric, Record
from harness.model import get_model
from harness.results import ModelInfo
from harness.runner import RunSettings, evaluate
from harness.task import Task
from harness.types import Prediction, Sample

HEIGHT, WIDTH = 480, 640


class OverlapMetric(Metric):
    """Cumulative IoU on RLE (a stand-in with the cost profile of referring segmentation)."""

    name = "overlap"

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        truth, predicted = sample.target["mask"], prediction.masks[0]
        intersection = masks.intersection_area(truth, predicted)
        return {"intersection": intersection, "union": masks.area(truth) + masks.area(predicted) - intersection}

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        union = sum(r["union"] for r in records)
        return {"cIoU": sum(r["intersection"] for r in records) / union if union else float("nan")}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        intersection = np.array([r["intersection"] for r in records], dtype=float)[draws].sum(axis=1)
        union = np.array([r["union"] for r in records], dtype=float)[draws].sum(axis=1)
        return {"cIoU": intersection / union}


class SyntheticSegmentation(Task):
    family = "synthetic"
    kind = "referring_segmentation"
    requires = frozenset({"masks"})
    prompt_template = "Please segment {sentence}."

    def __init__(self, name: str, count: int, image: Path) -> None:
        super().__init__(name, count=count)
        self.count, self.image = count, image
        rng = np.random.default_rng(0)
        rows, cols = np.ogrid[:HEIGHT, :WIDTH]
        self._masks = []
        for _ in range(64):  # 64 distinct ellipses, reused round-robin
            cy, cx = rng.integers(60, HEIGHT - 60), rng.integers(80, WIDTH - 80)
            ry, rx = rng.integers(20, 120), rng.integers(20, 160)
            self._masks.append(masks.encode(((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1))

    def data_files(self, data_root: Path) -> dict[str, Path]:
        return {"image": self.image}

    def samples(self, data_root: Path) -> list[Sample]:
        return [
            Sample(
                sample_id=str(index),
                image=str(self.image),
                target={"mask": self._masks[index % 64]},
                inputs={"sentence": f"object {index}"},
                image_size=(HEIGHT, WIDTH),
            )
            for index in range(self.count)
        ]

    def reference(self, sample: Sample) -> Prediction:
        return Prediction(text="[SEG]", masks=(sample.target["mask"],))

    def metrics(self) -> list[Metric]:
        return [OverlapMetric()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="overhead-"))
    out = args.out or workdir / "run"
    image = workdir / "image.png"
    Image.new("RGB", (WIDTH, HEIGHT)).save(image)
    task = SyntheticSegmentation("synthetic_refseg", args.samples, image)
    adapter = get_model("oracle")
    info = ModelInfo(name="oracle", args="", options={}, fingerprint=adapter.fingerprint())
    settings = RunSettings(data_root=workdir, output_dir=out, progress=False)
    for label in ("cold (predict + score)", "warm (all cached)"):
        start = time.perf_counter()
        results = evaluate(adapter, [task], settings, model_info=info)
        total = time.perf_counter() - start
        model = results["runtime"]["timings"]["model_s"]["synthetic_refseg"]
        harness_ms = 1000 * (total - model) / args.samples
        print(f"{label}: total {total:.2f} s, adapter {model:.3f} s, harness {harness_ms:.3f} ms/sample")
    assert results["tasks"]["synthetic_refseg"]["metrics"]["cIoU"] == 1.0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"samples: {args.samples}, mask {HEIGHT}x{WIDTH}, peak RSS {peak_mb:.0f} MB")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
