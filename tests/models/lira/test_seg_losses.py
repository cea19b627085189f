"""LIRA's `[SEG]` mask losses and the stage-1 projection loss on hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch

from models.lira.config import MaskLossConfig
from models.lira.losses import (
    naive_dice_loss,
    point_sample,
    projection_loss,
    seg_mask_losses,
    sigmoid_bce_loss,
    uncertain_point_coords,
)

EPS32 = torch.finfo(torch.float32).eps


def test_point_sample_by_hand() -> None:
    grid = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    points = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.5, 0.5], [0.5, 0.25], [0.0, 0.0]]])
    assert point_sample(grid, points)[0, 0].tolist() == pytest.approx([1.0, 2.0, 2.5, 1.5, 0.25], abs=1e-6)


def test_naive_dice_by_hand() -> None:
    # One mask, p = 0.5 everywhere, targets 1, 1, 0, 0: Σpt = 1, Σp = 2, Σt = 2 → dice (2 + 1) / (4 + 1).
    loss = naive_dice_loss(torch.zeros(1, 4), torch.tensor([[1.0, 1.0, 0.0, 0.0]]), avg_factor=1.0)
    assert float(loss) == pytest.approx(0.4 / (1 + EPS32), rel=1e-6)
    pred = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3), -math.log(3), 0.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    # Second mask: p = 0.75, 0.25, 0.5, 0.5, targets 1, 0, 0, 0: Σpt = 0.75, Σp = 2, Σt = 1 → 2.5 / 4.
    loss = naive_dice_loss(pred, targets, avg_factor=2.0)
    assert float(loss) == pytest.approx((0.4 + (1 - 2.5 / 4)) / (2 + EPS32), rel=1e-6)


def test_sigmoid_bce_by_hand() -> None:
    pred = torch.tensor([2.0, -1.0, 0.0])
    target = torch.tensor([1.0, 0.0, 1.0])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)) + math.log(2)) / (3 + EPS32)
    assert float(sigmoid_bce_loss(pred, target, avg_factor=3.0)) == pytest.approx(expected, rel=1e-6)


def test_uncertain_points_prefer_logits_near_zero() -> None:
    # Left 5/8 of the map has logit 0 (most uncertain), the rest +10: every importance point
    # lies at x ≤ 5/8; the last quarter are fresh uniform points.
    logits = torch.full((2, 1, 8, 8), 10.0)
    logits[..., :5] = 0.0
    generator = torch.Generator().manual_seed(0)
    coords = uncertain_point_coords(logits, 200, 3.0, 0.75, generator=generator)
    assert coords.shape == (2, 200, 2)
    assert bool((coords[:, :150, 0] <= 5 / 8).all())
    assert bool((coords[:, 150:, 0] > 5 / 8).any())
    assert bool(((coords >= 0) & (coords <= 1)).all())


def test_uncertain_points_all_random_when_ratio_zero() -> None:
    coords = uncertain_point_coords(torch.zeros(1, 1, 4, 4), 10, 2.0, 0.0, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(1)
    torch.rand(1, 20, 2, generator=generator)  # the oversampled candidates are drawn first
    assert torch.equal(coords, torch.rand(1, 10, 2, generator=generator))


def test_seg_mask_losses_by_hand() -> None:
    # Logits 0 everywhere (zero padding keeps border samples at 0 too) and empty ground truth:
    # per point p = 0.5, t = 0, so BCE = ln 2 and per mask dice = 1 / (0.5·P + 1).
    num_masks, num_points, outputs = 3, 100, 10
    config = MaskLossConfig(num_points=num_points)
    predictions = [torch.zeros(num_masks, 1, 16, 16, requires_grad=True) for _ in range(outputs)]
    gt = torch.zeros(num_masks, 64, 64)
    losses = seg_mask_losses(predictions, gt, config, generator=torch.Generator().manual_seed(0))
    dice_per_output = 5.0 * num_masks * (1 - 1 / (0.5 * num_points + 1)) / (num_masks + 1e-4 + EPS32)
    bce_per_output = 5.0 * num_masks * num_points * math.log(2) / (num_masks * num_points + 1e-4 + EPS32)
    assert float(losses.dice.detach()) == pytest.approx(0.1 * outputs * dice_per_output, rel=1e-5)
    assert float(losses.mask.detach()) == pytest.approx(0.4 * outputs * bce_per_output, rel=1e-5)
    (losses.dice + losses.mask).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in predictions)


def test_seg_mask_losses_reject_mismatched_counts() -> None:
    with pytest.raises(ValueError, match=r"expected \(2, 1, h, w\)"):
        seg_mask_losses([torch.zeros(3, 1, 4, 4)], torch.zeros(2, 8, 8))


def test_projection_loss_by_hand() -> None:
    assert float(projection_loss(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2))) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="shapes differ"):
        projection_loss(torch.zeros(2, 3), torch.zeros(3, 2))
