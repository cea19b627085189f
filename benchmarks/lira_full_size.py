"""Full-size LIRA (InternVL2 + OMG-Seg + SEFE + `[SEG]` decoding) on CPU with random weights: one referring-
segmentation pass.

Builds `LiraModel` for a preset without random initialisation (`empty_weights`) and fills the weights in place
with seeded random values (`initialise_random`), so no second copy of the weights is ever made. Then, for one
image: one 448 px InternVL tile plus the 1024² OMG input → visual sequence → a short chat prompt with the image
placeholder and a final `[SEG]` → language-model prefill (hidden states; logits of the last position only) →
`[SEG]` hidden state → mask at the original image size. Prints build time, the time of each stage, parameter
counts per part and the peak resident memory of the process.

Run from the repository root:

    python -m benchmarks.lira_full_size                      # lira-2b, fp32
    python -m benchmarks.lira_full_size --preset lira-tiny   # a smoke run of seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from models.lira.checkpoint.lira import build_random_lira
from models.lira.config import PRESETS, preset
from models.lira.model import IMAGE_TOKEN_INDEX

T = TypeVar("T")


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lira-2b", choices=sorted(PRESETS))
    parser.add_argument("--text-tokens", type=int, default=48, help="prompt tokens around the image placeholder")
    parser.add_argument("--original-size", type=int, nargs=2, default=(640, 480), help="W H of the image")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = preset(args.preset)
    vl = config.vision_language

    model, build_s = timed(lambda: build_random_lira(config, seed=0))
    rss_after_build = peak_rss_gib()

    g = torch.Generator().manual_seed(1)
    tile = torch.randn(1, 3, vl.vision.image_size, vl.vision.image_size, generator=g)
    seg_image = torch.randn(1, 3, config.seg_image_size, config.seg_image_size, generator=g)
    text = torch.randint(3, vl.chat_tokens.im_end, (args.text_tokens,), generator=g).tolist()
    half = args.text_tokens // 2
    chat = vl.chat_tokens
    ids = [1, chat.im_start, *text[:half], IMAGE_TOKEN_INDEX, *text[half:], chat.im_end, chat.im_start]
    ids.append(config.added_tokens.seg)  # as if the answer began with [SEG]
    input_ids = torch.tensor([ids])

    times: dict[str, float] = {}
    with torch.inference_mode():
        internvl, times["internvl_tile_s"] = timed(lambda: model.internvl_features(tile))
        omg, times["omg_seg_encode_s"] = timed(lambda: model.visual_encoder.encode(seg_image))
        sequences, times["sefe_projector_s"] = timed(
            lambda: model.projector(
                omg.clip_feature, omg.query_pos_feat, omg.attn_mask, [internvl.reshape(-1, vl.text.hidden_size)]
            )
        )
        spliced = model.build_inputs_embeds(input_ids, [[sequences[0]]])
        outputs, times["llm_prefill_s"] = timed(
            lambda: model.language_model(
                inputs_embeds=spliced.inputs_embeds, output_hidden_states=True, logits_to_keep=1, use_cache=False
            )
        )
        hidden = outputs.hidden_states[-1][0, -1:]  # the position whose input token is [SEG]
        masks, times["seg_to_mask_s"] = timed(
            lambda: model.seg_hidden_states_to_masks(hidden, omg, torch.tensor([0]), [tuple(args.original_size)])
        )
    if not torch.isfinite(outputs.logits).all():
        raise SystemExit("non-finite logits")

    head = model.visual_encoder.panoptic_head
    params = {
        "vision_model (InternViT)": parameter_count(model.vision_model),
        "mlp1": parameter_count(model.mlp1),
        "language_model": parameter_count(model.language_model),
        "visual_encoder.backbone (ConvNeXt)": parameter_count(model.visual_encoder.backbone),
        "visual_encoder.panoptic_head": parameter_count(head),
        "projector (SEFE)": parameter_count(model.projector),
        "projector_text2vision": parameter_count(model.projector_text2vision),
    }
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "preset": args.preset,
        "dtype": "float32",
        "sequence_tokens": int(spliced.inputs_embeds.shape[1]),
        "visual_sequence_tokens": int(sequences[0].shape[0]),
        "valid_queries": int((~omg.attn_mask[0]).any(-1).sum()),
        "mask_shape": list(masks[0].shape),
        "build_s": round(build_s, 1),
        **{key: round(value, 2) for key, value in times.items()},
        "forward_total_s": round(sum(times.values()), 2),
        "params": params,
        "params_total": sum(params.values()),
        "peak_rss_after_build_gib": round(rss_after_build, 2),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
