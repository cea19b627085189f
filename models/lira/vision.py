"""InternVL feature path of LIRA: InternViT tiles → drop CLS → pixel shuffle (0.5, v2) → `mlp1`.

This is `LIRA.extract_feature` (echo840/LIRA `omg_llava/model/lira.py`, lira-model.md §2.2) on
transformers' native `InternVLVisionModel` and `InternVLMultiModalProjector`, which reproduce InternViT
and `mlp1` bit-exactly in eager fp32 (native-internvl.md).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import InternVLVisionModel
from transformers.models.internvl.modeling_internvl import InternVLMultiModalProjector

from models.lira.config import LiraVisionLanguageConfig


def pixel_shuffle(features: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
    """InternVL's pixel shuffle, version "v2" (the grid is transposed back after the shuffle).

    With `scale_factor` 0.5 this is a 2x2 space-to-depth: output cell (r, c) concatenates the input
    vectors at (2r, 2c), (2r, 2c+1), (2r+1, 2c), (2r+1, 2c+1), in that order.

    Args:
        features: `(batch, rows, cols, channels)`, rows and columns of the patch grid in row-major order.
        scale_factor: the reciprocal of an integer (0.5 for InternVL2).

    Returns:
        `(batch, rows * s, cols * s, channels / s**2)` for `s = scale_factor`.

    Raises:
        ValueError: if the input is not 4-D or the grid does not divide by `1 / scale_factor`.
    """
    if features.dim() != 4:
        raise ValueError(f"pixel_shuffle expects (batch, rows, cols, channels), got shape {tuple(features.shape)}")
    factor = round(1 / scale_factor)
    if factor < 1 or abs(factor * scale_factor - 1.0) > 1e-9:
        raise ValueError(f"scale_factor must be 1/n for an integer n, got {scale_factor}")
    batch, rows, cols, channels = features.shape
    if rows % factor or cols % factor:
        raise ValueError(f"the {rows}x{cols} grid is not divisible by {factor} (scale_factor {scale_factor})")
    # The original names the axes (n, w, h, c); the steps are the same on (batch, rows, cols, channels).
    x = features.reshape(batch, rows, cols // factor, channels * factor)  # merge column pairs
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.reshape(batch, cols // factor, rows // factor, channels * factor * factor)  # merge row pairs
    return x.permute(0, 2, 1, 3).contiguous()  # "v2": transpose the grid back


def shuffle_vision_tokens(last_hidden_state: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
    """Vision-tower output → `mlp1` input: drop CLS, lay patches on their square grid, pixel-shuffle, flatten.

    Args:
        last_hidden_state: `(tiles, 1 + grid**2, width)`, CLS first.

    Returns:
        `(tiles, (grid * scale_factor)**2, width / scale_factor**2)`; `(T, 256, 4096)` for InternViT-300M
        at 448 px.
    """
    if last_hidden_state.dim() != 3:
        raise ValueError(f"expected (tiles, 1 + patches, width), got shape {tuple(last_hidden_state.shape)}")
    patches = last_hidden_state[:, 1:, :]
    grid = round(patches.shape[1] ** 0.5)
    if grid * grid != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch tokens do not form a square grid")
    shuffled = pixel_shuffle(patches.reshape(patches.shape[0], grid, grid, -1), scale_factor)
    return shuffled.reshape(shuffled.shape[0], -1, shuffled.shape[-1])


def build_vision_model(config: LiraVisionLanguageConfig) -> InternVLVisionModel:
    """The native InternViT; its keys are listed in `models.lira.checkpoint.internvl.INTERNVIT_RULES`."""
    return InternVLVisionModel(config.vision.to_hf(config.attn_implementation))


def build_mlp1(config: LiraVisionLanguageConfig) -> InternVLMultiModalProjector:
    """`mlp1` = LayerNorm(4C, eps 1e-5) → Linear(4C → H) → GELU → Linear(H → H), as the native projector."""
    return InternVLMultiModalProjector(config.to_hf())


def extract_internvl_features(
    vision_model: InternVLVisionModel,
    mlp1: nn.Module,
    pixel_values: torch.Tensor,
    config: LiraVisionLanguageConfig,
) -> torch.Tensor:
    """`LIRA.extract_feature`: image tokens of each tile in the LLM width.

    Args:
        pixel_values: `(tiles, channels, image_size, image_size)`, ImageNet-normalised; cast to the vision
            tower's dtype (LIRA's callers do the same cast).

    Returns:
        `(tiles, tokens_per_tile, text_hidden_size)`; callers flatten tiles in order (thumbnail last).

    Raises:
        ValueError: if the tiles do not have the configured channel count and size.
    """
    vision = config.vision
    expected = (vision.num_channels, vision.image_size, vision.image_size)
    if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"pixel_values must have shape (tiles, {', '.join(map(str, expected))}), got {tuple(pixel_values.shape)}"
        )
    last_hidden_state = vision_model(pixel_values=pixel_values.to(vision_model.dtype)).last_hidden_state
    return mlp1(shuffle_vision_tokens(last_hidden_state, config.downsample_ratio))
