"""Mask and projection losses of LIRA's training forward (lira-model.md §8).

The `[SEG]` mask losses follow `Mask2FormerVideoSemSamHead.llm_seg_loss` with mmdet's point
sampling (`get_uncertain_point_coords_with_randomness`, mmcv `point_sample`), `CrossEntropyLoss(
use_sigmoid=True)` and `DiceLoss(naive_dice=True)`, including their `avg_factor` reductions, and
LIRA's outer scales (`loss_dice` × 0.1, `loss_mask` × 0.4 of the sums over decoder outputs).

Shapes: N masks (one per `[SEG]`), P sampled points, h×w prediction maps, H×W ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from models.lira.config import MaskLossConfig

_FLOAT32_EPS = torch.finfo(torch.float32).eps


@dataclass
class MaskLosses:
    """LIRA's scaled `[SEG]` mask losses (`loss_dice`, `loss_mask` of `LIRA.compute_loss`)."""

    dice: Tensor
    mask: Tensor


def point_sample(inputs: Tensor, points: Tensor) -> Tensor:
    """Bilinear values of `inputs` at normalised points (mmcv `point_sample`, `align_corners=False`).

    Args:
        inputs: `(N, C, H, W)`.
        points: `(N, P, 2)` as (x, y) in [0, 1]; (0, 0) is the top-left corner of the map.

    Returns:
        `(N, C, P)`; points outside the map read zeros.
    """
    grid = points.unsqueeze(2) * 2.0 - 1.0
    return F.grid_sample(inputs, grid, align_corners=False).squeeze(3)


def uncertain_point_coords(
    mask_logits: Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """mmdet `get_uncertain_point_coords_with_randomness` for class-agnostic masks.

    Draws ⌊num_points·oversample_ratio⌋ uniform points, keeps the ⌊importance_sample_ratio·
    num_points⌋ whose sampled logit is closest to 0, and fills up with fresh uniform points.

    Args:
        mask_logits: `(N, 1, h, w)`.

    Returns:
        `(N, num_points, 2)` (x, y) in [0, 1]: the uncertain points first, then the random ones.
    """
    if oversample_ratio < 1 or not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"uncertain_point_coords: need oversample_ratio >= 1 and importance_sample_ratio in [0, 1], "
            f"got {oversample_ratio}, {importance_sample_ratio}"
        )
    batch = mask_logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    device = mask_logits.device
    coords = torch.rand(batch, num_sampled, 2, device=device, generator=generator)
    uncertainty = -point_sample(mask_logits, coords.to(mask_logits.dtype)).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    idx = torch.topk(uncertainty[:, 0, :], k=num_uncertain, dim=1)[1]
    idx = idx + num_sampled * torch.arange(batch, dtype=torch.long, device=device)[:, None]
    coords = coords.view(-1, 2)[idx.view(-1), :].view(batch, num_uncertain, 2)
    num_random = num_points - num_uncertain
    if num_random > 0:
        extra = torch.rand(batch, num_random, 2, device=device, generator=generator)
        coords = torch.cat((coords, extra), dim=1)
    return coords


def sigmoid_bce_loss(pred_logits: Tensor, targets: Tensor, avg_factor: float) -> Tensor:
    """Σ BCE-with-logits / (avg_factor + ε32) (mmdet `CrossEntropyLoss(use_sigmoid=True)`, weight 1)."""
    loss = F.binary_cross_entropy_with_logits(pred_logits, targets.to(pred_logits.dtype), reduction="none")
    return loss.sum() / (avg_factor + _FLOAT32_EPS)


def naive_dice_loss(pred_logits: Tensor, targets: Tensor, avg_factor: float, eps: float = 1.0) -> Tensor:
    """Σ_n [1 − (2·Σp·t + eps) / (Σp + Σt + eps)] / (avg_factor + ε32), p = sigmoid (mmdet naive Dice).

    Args:
        pred_logits: `(N, ...)`.
        targets: `(N, ...)` in [0, 1].
    """
    probs = pred_logits.sigmoid().flatten(1)
    targets = targets.flatten(1).to(probs.dtype)
    dice = (2 * (probs * targets).sum(1) + eps) / (probs.sum(1) + targets.sum(1) + eps)
    return (1 - dice).sum() / (avg_factor + _FLOAT32_EPS)


def seg_mask_losses(
    mask_logits: Sequence[Tensor],
    gt_masks: Tensor,
    config: MaskLossConfig | None = None,
    *,
    generator: torch.Generator | None = None,
) -> MaskLosses:
    """LIRA's `[SEG]` mask losses over all decoder outputs.

    For each output: sample points by uncertainty on that output, read prediction and ground truth
    there, then `dice_weight`·Dice (averaged over the N masks) and `mask_weight`·BCE (averaged
    over the N·P points). The sums over outputs are scaled by `dice_scale` and `mask_scale`.

    Args:
        mask_logits: the decoder's outputs, each `(N, 1, h, w)`.
        gt_masks: `(N, H, W)` binary masks over the same padded square image (any resolution).
        config: weights and sampling settings (LIRA's by default).
        generator: random source for the point sampling (the global one if None).
    """
    config = config or MaskLossConfig()
    if not mask_logits:
        raise ValueError("seg_mask_losses: no mask predictions given")
    num_masks = gt_masks.shape[0]
    for k, logits in enumerate(mask_logits):
        if logits.dim() != 4 or logits.shape[:2] != (num_masks, 1):
            raise ValueError(
                f"seg_mask_losses: prediction {k} has shape {tuple(logits.shape)}, expected ({num_masks}, 1, h, w)"
            )
    targets_map = gt_masks.unsqueeze(1)
    dice_total = mask_total = mask_logits[0].new_zeros(())
    for logits in mask_logits:
        with torch.no_grad():
            coords = uncertain_point_coords(
                logits,
                config.num_points,
                config.oversample_ratio,
                config.importance_sample_ratio,
                generator=generator,
            ).to(logits.dtype)
            point_targets = point_sample(targets_map.to(logits.dtype), coords).squeeze(1)
        point_preds = point_sample(logits, coords).squeeze(1)
        dice = naive_dice_loss(point_preds, point_targets, num_masks + 1e-4, config.dice_eps)
        bce = sigmoid_bce_loss(
            point_preds.reshape(-1),
            point_targets.reshape(-1),
            point_preds.shape[0] * point_preds.shape[1] + 1e-4,
        )
        dice_total = dice_total + config.dice_weight * dice
        mask_total = mask_total + config.mask_weight * bce
    return MaskLosses(dice=config.dice_scale * dice_total, mask=config.mask_scale * mask_total)


def projection_loss(reconstructed: Tensor, target: Tensor, weight: float = 10.0) -> Tensor:
    """Stage-1 `loss_proj`: `weight` · mean squared error (lira-model.md §8)."""
    if reconstructed.shape != target.shape:
        raise ValueError(f"projection_loss: shapes differ, {tuple(reconstructed.shape)} vs {tuple(target.shape)}")
    return torch.mean((reconstructed - target) ** 2) * weight


__all__ = [
    "MaskLosses",
    "naive_dice_loss",
    "point_sample",
    "projection_loss",
    "seg_mask_losses",
    "sigmoid_bce_loss",
    "uncertain_point_coords",
]
