"""Referring segmentation through the LIRA adapter's engine with a full-size model of random weights.

Builds `lira-2b` (or another preset) with seeded random weights in place (`build_random_lira`), a tokenizer with the
real ids (the bundled tiny tokenizer resized to InternLM2's 92,544 pieces, `full_size_tokenizer_folder`), and
answers referring-segmentation requests exactly as `run_eval.py` would (`LiraEngine.predict`: InternVL tiles per
`refcoco_lira.py`, OMG-Seg, SEFE, the chat prompt with BOS, greedy decoding with the KV cache, stop words). Random
weights never produce a stop token, so every request generates ``--max-new-tokens`` tokens (the task's 100 by
default): the worst case for decoding. `[SEG]` → mask is timed separately (random weights rarely emit `[SEG]`).

For each batch size the same requests are answered in batches of that size; the script prints seconds per
request, generated tokens per second and peak memory (process RSS; on CUDA also the peak allocated GPU memory).

    python -m benchmarks.lira_generate                                   # lira-2b, CPU, float32, batch 1
    python -m benchmarks.lira_generate --device cuda --batch-sizes 1,8 --requests 16   # GPU throughput
    python -m benchmarks.lira_generate --preset lira-tiny --requests 4 --batch-sizes 1,4   # seconds; a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.types import GenerationSettings, Prediction, Request
from models.lira.adapter import LiraEngine, RuntimeOptions
from models.lira.assets.tiny_tokenizer import FOLDER as TINY_TOKENIZER
from models.lira.assets.tiny_tokenizer import full_size_tokenizer_folder
from models.lira.checkpoint.lira import build_random_lira
from models.lira.config import PRESETS
from models.lira.tokenizer import load_lira_tokenizer

SENTENCES = ("the man on the left", "red cup in the middle", "dog behind the bench", "white car", "woman in black")


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_name() -> str:
    """The CPU model (Linux ``/proc/cpuinfo``) and how many cores this process may use."""
    name = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        name = lines[0].split(":", 1)[1].strip() if lines else name
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_requests(folder: Path, count: int, size: tuple[int, int], max_new_tokens: int) -> list[Request]:
    """``count`` referring-segmentation requests, each on its own random image of ``size`` (W, H)."""
    rng = np.random.default_rng(0)
    requests = []
    for index in range(count):
        path = folder / f"image{index}.png"
        Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
        requests.append(
            Request(
                task="refcoco_val",
                task_family="refcoco",
                sample_id=str(index),
                kind="referring_segmentation",
                image=str(path),
                prompt=f"Please segment {SENTENCES[index % len(SENTENCES)]}.",
                generation=GenerationSettings(max_new_tokens=max_new_tokens),
            )
        )
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lira-2b", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16")
    parser.add_argument("--attention", default="auto", choices=["auto", "eager", "sdpa"])
    parser.add_argument("--batch-sizes", default="1", help="comma-separated batch sizes, e.g. 1,8")
    parser.add_argument("--requests", type=int, default=2, help="requests answered at every batch size")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--image-size", type=int, nargs=2, default=(448, 448), metavar=("W", "H"))
    parser.add_argument("--tiles", default="", help="tile override, e.g. refcoco:1-1 (default: 4-12 as the original)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    tiles = [args.tiles] if args.tiles else []
    runtime = RuntimeOptions.resolve(args.dtype, args.device, args.attention, tiles, None, 10, False, args.threads)
    device, dtype = runtime.device, runtime.dtype
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]

    start = time.perf_counter()
    config = runtime.config(args.preset)
    model = build_random_lira(config, args.seed, dtype=dtype, device=device)
    with tempfile.TemporaryDirectory(prefix="lira-generate-") as work:
        folder = Path(work)
        tokenizer_folder = (
            TINY_TOKENIZER if args.preset == "lira-tiny" else full_size_tokenizer_folder(folder / "tokenizer")
        )
        tokenizer = load_lira_tokenizer(tokenizer_folder, expected_ids=None)
        engine = LiraEngine(model, tokenizer, tiles=runtime.tiles, cached_images=0)  # every batch size encodes
        build_s = time.perf_counter() - start
        rss_after_build = peak_rss_gib()
        requests = make_requests(folder, args.requests, tuple(args.image_size), args.max_new_tokens)

        one_token = [replace(request, generation=GenerationSettings(max_new_tokens=1)) for request in requests]

        def answer(chosen: list[Request], batch_size: int) -> tuple[float, list[Prediction]]:
            synchronize(device)
            started = time.perf_counter()
            predictions = []
            for first in range(0, len(chosen), batch_size):
                predictions += engine.predict(chosen[first : first + batch_size])
            synchronize(device)
            return time.perf_counter() - started, predictions

        runs = []
        for batch_size in batch_sizes:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds, predictions = answer(requests, batch_size)
            # the same requests with one new token: image encoding + prefill, so the rest is decoding
            prefill_seconds, _ = answer(one_token, batch_size)
            tokens = sum(prediction.generated_tokens or 0 for prediction in predictions)
            steps = tokens / batch_size - len(requests) / batch_size  # decoding steps after the first token
            run = {
                "batch_size": batch_size,
                "requests": len(requests),
                "seconds": round(seconds, 2),
                "seconds_per_request": round(seconds / len(requests), 2),
                "generated_tokens": tokens,
                "tokens_per_second": round(tokens / seconds, 2),
                "encode_and_prefill_seconds_per_request": round(prefill_seconds / len(requests), 2),
                "decode_seconds_per_step": round((seconds - prefill_seconds) / max(steps, 1), 3),
                "prompt_tokens": predictions[0].prompt_tokens,
                "tiles": predictions[0].metadata["tiles"],
            }
            if device.type == "cuda":
                run["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            runs.append(run)
            print(json.dumps(run))

        encoding = engine.encode_image(requests[0].image, engine.tile_setting(requests[0]))
        hidden = torch.randn(config.vision_language.text.hidden_size, dtype=dtype, device=device)
        synchronize(device)
        started = time.perf_counter()
        mask = engine.seg_mask(hidden, encoding)
        synchronize(device)
        seg_s = time.perf_counter() - started

    results = {
        "preset": args.preset,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "dtype": str(dtype),
        "attention": model.language_model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "image_size": list(args.image_size),
        "max_new_tokens": args.max_new_tokens,
        "build_s": round(build_s, 1),
        "seg_to_mask_s": round(seg_s, 2),
        "mask_shape": list(mask.shape),
        "runs": runs,
        "rss_after_build_gib": round(rss_after_build, 2),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
