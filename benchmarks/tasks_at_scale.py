"""Task loading and an oracle run at 10,000+ samples, on synthetic scenes in every task's real format.

``python benchmarks/tasks_at_scale.py [--scenes 6000] [--data-root DIR]`` builds the synthetic data (unless
``--data-root`` holds it already), then times for every task the real-format loader (``Task.samples``,
cold: each family's files parsed once, RefCOCO masks rasterised) and a full oracle run (predict, cache,
score, bootstrap, results) of the largest tasks. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_builders.synthetic import build
from harness.model import get_model
from harness.results import ModelInfo
from harness.runner import RunSettings, evaluate
from harness.task import expand_task_names, get_task

RUN_TASKS = ("refcoco_val", "pope_random", "attreval_qa_lira")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=6000)
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="attreval-scale-"))
    root = args.data_root or workspace / "synthetic"
    if not (root / "ref_seg").exists():
        start = time.perf_counter()
        build(root, args.scenes)
        print(f"built {args.scenes} scenes in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    rows = ["| task | samples | load s | load ms/sample |", "| --- | ---: | ---: | ---: |"]
    for name in expand_task_names("all"):
        if name.startswith("gcg") or name == "chair" or "_gqa_" in name or "_aokvqa_" in name:
            continue  # same loaders as gcg_val, pope_*; chair draws 500 images
        if name in ("attreval_qa", "attreval_seg"):
            continue  # built AttrEval: benchmarks/attreval_builder.py
        task = get_task(name)
        start = time.perf_counter()
        count = len(task.samples(root))
        seconds = time.perf_counter() - start
        rows.append(f"| {name} | {count} | {seconds:.2f} | {1000 * seconds / count:.3f} |")
    for name in ("gcg_val", "chair"):
        start = time.perf_counter()
        count = len(get_task(name).samples(root))
        seconds = time.perf_counter() - start
        rows.append(f"| {name} | {count} | {seconds:.2f} | {1000 * seconds / count:.3f} |")
    print("\n".join(rows))
    adapter = get_model("oracle")
    info = ModelInfo(name="oracle", args="", options={}, fingerprint=adapter.fingerprint())
    rows = ["| oracle run | samples | wall s | ms/sample |", "| --- | ---: | ---: | ---: |"]
    for name in RUN_TASKS:
        settings = RunSettings(data_root=root, output_dir=workspace / f"run-{name}", progress=False)
        start = time.perf_counter()
        results = evaluate(adapter, [get_task(name)], settings, model_info=info)
        seconds = time.perf_counter() - start
        count = results["tasks"][name]["n_samples"]  # type: ignore[index]
        rows.append(f"| {name} | {count} | {seconds:.1f} | {1000 * seconds / count:.2f} |")
    print("\n".join(rows))
    print(f"peak RSS {peak_rss_mb():.0f} MB; data in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
