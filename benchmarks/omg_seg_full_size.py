"""Full-size OMG-Seg (ConvNeXt-L) + SEFE projector + `[SEG]` decoding on CPU with random weights.

Measures build time, parameter counts per part, the time of each stage for one image, and peak
resident memory. Run from the repository root:

    python -m benchmarks.omg_seg_full_size [--llm-hidden-size 2048] [--tiles 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import torch

from models.lira.config import OMG_SEG_CONVNEXT_LARGE, SEFE_PROJECTOR_2B, TEXT_TO_VISION_2B
from models.lira.processor import postprocess_mask_logits
from models.lira.projector import SefeProjector, TextToVisionProjector
from models.lira.segmentation import OmgSegEncoder

T = TypeVar("T")


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=1024, help="square OMG input side (LIRA: 1024)")
    parser.add_argument("--llm-hidden-size", type=int, default=2048, help="H: 2048 (LIRA-2B) or 4096 (8B)")
    parser.add_argument("--tiles", type=int, default=5, help="InternVL tiles, 256 tokens each (random)")
    parser.add_argument("--original-size", type=int, nargs=2, default=(640, 480), help="W H for mask output")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    projector_config = replace(SEFE_PROJECTOR_2B, llm_hidden_size=args.llm_hidden_size)
    t2v_config = replace(TEXT_TO_VISION_2B, llm_hidden_size=args.llm_hidden_size)

    def build() -> tuple[OmgSegEncoder, SefeProjector, TextToVisionProjector]:
        encoder = OmgSegEncoder(OMG_SEG_CONVNEXT_LARGE).eval()
        cfg = OMG_SEG_CONVNEXT_LARGE
        classes = torch.randn(cfg.num_classes, cfg.class_embed_prototypes, cfg.class_embed_dim)
        encoder.panoptic_head.set_class_embeddings(classes / classes.norm(dim=-1, keepdim=True))
        return encoder, SefeProjector(projector_config).eval(), TextToVisionProjector(t2v_config).eval()

    (encoder, projector, text_to_vision), build_s = _timed(build)
    rss_after_build = _peak_rss_gib()
    head = encoder.panoptic_head
    params = {
        "convnext_backbone": _params(encoder.backbone),
        "pixel_decoder": _params(head.pixel_decoder),
        "transformer_decoder": _params(head.transformer_decoder),
        "head_other": _params(head) - _params(head.pixel_decoder) - _params(head.transformer_decoder),
        "sefe_projector": _params(projector),
        "projector_text2vision": _params(text_to_vision),
    }

    image = torch.randn(1, 3, args.image_size, args.image_size)
    internvl = torch.randn(256 * args.tiles, args.llm_hidden_size)
    seg_hidden = torch.randn(1, args.llm_hidden_size)
    with torch.inference_mode():
        outputs, encode_s = _timed(lambda: encoder.encode(image))
        sequences, projector_s = _timed(
            lambda: projector(outputs.clip_feature, outputs.query_pos_feat, outputs.attn_mask, [internvl])
        )

        def seg_to_mask() -> torch.Tensor:
            decoded = encoder.decode_seg_queries(
                text_to_vision(seg_hidden), outputs.memory, torch.zeros(1, dtype=torch.long)
            )
            width, height = args.original_size
            return postprocess_mask_logits(decoded.predictions[-1].mask_logits, height, width)

        masks, seg_s = _timed(seg_to_mask)

    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "dtype": "float32",
        "image_size": args.image_size,
        "llm_hidden_size": args.llm_hidden_size,
        "internvl_tokens": 256 * args.tiles,
        "build_s": round(build_s, 2),
        "encode_s": round(encode_s, 2),
        "projector_s": round(projector_s, 2),
        "seg_to_mask_s": round(seg_s, 2),
        "params": params,
        "params_total": sum(params.values()),
        "visual_sequence_length": int(sequences[0].shape[0]),
        "valid_queries": int((~outputs.attn_mask[0]).any(-1).sum()),
        "mask_shape": list(masks.shape),
        "peak_rss_after_build_gib": round(rss_after_build, 2),
        "peak_rss_gib": round(_peak_rss_gib(), 2),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
