"""Configuration of the LIRA model: InternVL2 parts, OMG-Seg parts, projectors, and named presets."""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Vision-language part (InternViT, pixel shuffle, mlp1, InternLM2 as Llama)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Segmentation part (OMG-Seg encoder and decoder, SEFE projector, [SEG] projector)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Whole model and presets (lira-2b, lira-8b, lira-tiny)
# ---------------------------------------------------------------------------
