"""One stage-2 training step of full-size LIRA with random weights: seconds and peak memory.

Builds the model exactly as a stage-2 run does (`build_training_model` with `random_init_seed`: `lira-2b` weights
filled in place, LoRA r=128 attached, trainable parts in float32, activation checkpointing on) and drives it through
`TrainingEngine` (AdamW, gradient clipping, the config's precision) on one small synthetic batch: one image as one
InternVL tile plus the 1024² OMG input, a short question and a one-phrase ILVC answer
(`[SEG]<image_id><image> <p> ... </p> [SEG]`, so one local-crop tile and one 640×480 mask). Steps 1 and 2 are timed
(step 1 also allocates the optimizer state). Peak memory: the process's peak RSS on CPU, and
`torch.cuda.max_memory_allocated` on CUDA.

Run from the repository root:

    python -m benchmarks.train_step                         # lira-2b on CPU, float32
    python -m benchmarks.train_step --device cuda           # on a GPU: frozen weights float16, float16 autocast
    python -m benchmarks.train_step --preset lira-tiny      # a smoke run of seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from models.lira.model import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from models.lira.training.config import load_config
from models.lira.training.dataset import TrainingBatch
from models.lira.training.engine import TrainingEngine, autocast_dtype
from models.lira.training.modeling import build_training_model, trainable_parameters
from models.lira.training.runtime import Runtime


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_batch(config, device: torch.device, text_tokens: int, seed: int = 1) -> TrainingBatch:  # type: ignore[no-untyped-def]
    """One sample in the stage-2 layout: question with the image, a one-phrase ILVC answer, one mask."""
    vl, added = config.vision_language, config.added_tokens
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(3, vl.chat_tokens.im_end, (text_tokens,), generator=g).tolist()
    half = text_tokens // 2
    chat = vl.chat_tokens
    question = [1, chat.im_start, *words[:half], IMAGE_TOKEN_INDEX, *words[half:], chat.im_end, chat.im_start]
    phrase = words[:4]
    answer = [added.seg, added.image_id, IMAGE_TOKEN_INDEX, added.p_start, *phrase, added.p_end, added.seg, chat.im_end]
    ids = torch.tensor([question + answer])
    labels = torch.tensor([[IGNORE_INDEX] * len(question) + answer])
    tile = vl.vision.image_size
    mask = torch.zeros(1, 480, 640, dtype=torch.uint8)
    mask[0, 100:300, 200:420] = 1
    return TrainingBatch(
        indices=[0],
        input_ids=ids,
        labels=labels,
        attention_mask=torch.ones_like(ids),
        seg_pixel_values=torch.randn(1, 3, config.seg_image_size, config.seg_image_size, generator=g),
        internvl_pixel_values=[torch.randn(1, 3, tile, tile, generator=g)],
        local_crop_pixel_values=[torch.randn(1, 3, tile, tile, generator=g)],
        gt_masks=[mask],
    ).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lira-2b", choices=["lira-2b", "lira-8b", "lira-tiny"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--text-tokens", type=int, default=48, help="question tokens around the image placeholder")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config_name = "stage2-8b" if args.preset == "lira-8b" else "stage2"
    overrides = ["model.random_init_seed=0", "model.init_pth=null", f"device={args.device}", *args.overrides]
    if args.preset == "lira-tiny":
        overrides += ["model.preset=lira-tiny", "model.lora.rank=8", "model.lora.alpha=16"]
    config = load_config(config_name, overrides)
    runtime = Runtime.start(config)
    device = runtime.device

    start = time.perf_counter()
    model, _ = build_training_model(config, device)
    build_s = time.perf_counter() - start
    engine = TrainingEngine(model, config, runtime)
    batch = synthetic_batch(model.config, device, args.text_tokens)
    rss_after_build = peak_rss_gib()

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    steps = []
    for step in range(args.steps):
        torch.manual_seed(step)
        generator = torch.Generator(device=device).manual_seed(step)
        synchronise()
        start = time.perf_counter()
        output = engine.forward_backward(batch, divisor=1, sync=True, generator=generator)
        synchronise()
        middle = time.perf_counter()
        engine.set_lr(config.optim.lr)
        grad_norm = engine.step()
        synchronise()
        end = time.perf_counter()
        if not output.seg_status.applied:
            raise SystemExit(f"mask losses not applied: {output.seg_status.reason}")
        steps.append(
            {
                "step": step + 1,
                "forward_backward_s": round(middle - start, 2),
                "optimizer_s": round(end - middle, 2),
                "step_s": round(end - start, 2),
                "loss": round(float(output.loss.detach()), 4),
                "grad_norm": None if grad_norm is None else round(grad_norm, 3),
            }
        )
        print(json.dumps(steps[-1]), flush=True)
    trainable = sum(p.numel() for _, p in trainable_parameters(model))
    amp = autocast_dtype(config, device)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
        + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
        "torch": torch.__version__,
        "preset": args.preset,
        "device": str(device),
        "frozen_dtype": str(next(model.language_model.model.layers[0].mlp.down_proj.base_layer.parameters()).dtype),
        "autocast": "none (float32)" if amp is None else str(amp),
        "activation_checkpointing": config.activation_checkpointing,
        "sequence_text_tokens": int(batch.input_ids.shape[1]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": trainable,
        "build_s": round(build_s, 1),
        "steps": steps,
        "peak_rss_after_build_gib": round(rss_after_build, 2),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }
    if device.type == "cuda":
        results["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
