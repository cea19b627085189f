"""Full-size LIRA vision-language half (InternViT-300M + mlp1 + InternLM2-1.8B as Llama) on CPU.

Builds `LiraVisionLanguageModel` for a preset with random weights, then runs one forward pass over one
448-px tile (256 image tokens spliced at `<IMG_CONTEXT>` positions) inside a short chat prompt. Prints the
build time, forward time, parameter count per part and the peak resident memory of the process.

Run from the repository root:

    python -m benchmarks.lira_vl_full_size                      # lira-2b, fp32, 30 text tokens
    python -m benchmarks.lira_vl_full_size --preset lira-tiny   # seconds; a smoke run
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from models.lira.checkpoint.common import resolve_dtype
from models.lira.config import PRESETS, preset
from models.lira.vision_language import LiraVisionLanguageModel


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def prompt_ids(config_name: str, text_tokens: int) -> torch.Tensor:
    """`<s><|im_start|>` text `<img>` `<IMG_CONTEXT>` x tokens_per_tile `</img>` text `<|im_end|>`."""
    vl = preset(config_name).vision_language
    chat = vl.chat_tokens
    text = torch.randint(3, chat.im_end, (text_tokens,), generator=torch.Generator().manual_seed(0)).tolist()
    half = text_tokens // 2
    ids = [vl.text.bos_token_id, chat.im_start, *text[:half], chat.img_start]
    ids += [chat.img_context] * vl.tokens_per_tile + [chat.img_end, *text[half:], chat.im_end]
    return torch.tensor([ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lira-2b", choices=sorted(PRESETS))
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--text-tokens", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = preset(args.preset).vision_language
    dtype = resolve_dtype(args.dtype)

    # Built directly in the dtype (`.to(bf16)` afterwards would also round the float32 rotary buffer).
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        start = time.perf_counter()
        model = LiraVisionLanguageModel(config).eval()
        build_s = time.perf_counter() - start
    finally:
        torch.set_default_dtype(previous_dtype)

    ids = prompt_ids(args.preset, args.text_tokens)
    size = config.vision.image_size
    pixel_values = torch.randn(1, config.vision.num_channels, size, size, dtype=dtype)
    with torch.inference_mode():
        start = time.perf_counter()
        logits = model(ids, pixel_values).logits
        forward_s = time.perf_counter() - start
    if not torch.isfinite(logits.float()).all():
        raise SystemExit("non-finite logits")

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"preset {args.preset}, {dtype}, attn {config.attn_implementation}")
    image_tokens = config.tokens_per_tile
    print(f"sequence: {ids.shape[1]} tokens ({image_tokens} image + {ids.shape[1] - image_tokens} text)")
    print(f"build (random init): {build_s:.1f} s")
    print(f"forward (1 tile + prompt): {forward_s:.2f} s")
    for name in ("vision_model", "mlp1", "language_model"):
        print(f"params {name}: {parameter_count(getattr(model, name)):,}")
    print(f"params total: {parameter_count(model):,}")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
