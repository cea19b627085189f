"""Learning rate per iteration and gradient accumulation, with mmengine's semantics (lira-model.md §10).

The original's `param_scheduler` is `LinearLR(start_factor, by_epoch, begin=0, end=warmup_ratio × epochs)` then
`CosineAnnealingLR(eta_min, begin=warmup_ratio × epochs, end=epochs)`, both `convert_to_iter_based`: bounds become
`int(epochs_value × iterations_per_epoch)`, and `ParamSchedulerHook` steps them after every *iteration* (one
batch per device), not every optimizer step. With `W` warm-up iterations and `N` iterations in all, the rate of
iteration t (0-based) is therefore

- t < W: `base × (s + (1 - s) × t / (W - 1))` (`LinearParamScheduler`: `total_iters = end - begin - 1`; s alone
  when W = 1);
- W <= t < N: `eta_min + (base - eta_min) × (1 + cos(π (t - W) / (N - W))) / 2` (`T_max = end - begin`).

The optimizer steps after iterations A - 1, 2A - 1, ... and after the last one (A = `accumulative_counts`); each
loss is divided by A, except in a last, shorter group, where it is divided by the group's length (mmengine's
`OptimWrapper.scale_loss`).

With several ranks, t, W and N count *global* iterations (rank iterations × world size) and an optimizer step uses
the rate of the last global iteration of its group, so that the rate of every step is the same however the global
batch is split over ranks and accumulation. With one rank this is exactly mmengine's schedule; with R ranks it
differs from mmengine's (which counts rank iterations) by less than one iteration's worth of progress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """Learning rate and accumulation of a run of `total_iterations` iterations per rank on `world_size` ranks."""

    base_lr: float
    total_iterations: int
    warmup_iterations: int
    """Global iterations of warm-up."""
    warmup_start_factor: float
    eta_min: float
    accumulation: int
    world_size: int = 1

    @classmethod
    def build(
        cls,
        *,
        base_lr: float,
        iterations_per_epoch: int,
        epochs: int,
        warmup_ratio: float,
        warmup_start_factor: float,
        eta_min: float,
        accumulation: int,
        world_size: int = 1,
    ) -> Schedule:
        """`iterations_per_epoch` counts this rank's iterations (its DataLoader's length)."""
        total = iterations_per_epoch * epochs
        if total < 1:
            raise ValueError("the schedule needs at least one iteration")
        return cls(
            base_lr=base_lr,
            total_iterations=total,
            warmup_iterations=int(warmup_ratio * epochs * iterations_per_epoch * world_size),
            warmup_start_factor=warmup_start_factor,
            eta_min=eta_min,
            accumulation=accumulation,
            world_size=world_size,
        )

    def lr(self, iteration: int) -> float:
        """The learning rate of the optimizer step that follows rank iteration `iteration` (if it is one)."""
        return self.global_lr((iteration + 1) * self.world_size - 1)

    def global_lr(self, iteration: int) -> float:
        """The scheduled rate of global iteration `iteration`."""
        warmup, total = self.warmup_iterations, self.total_iterations * self.world_size
        if iteration < warmup:
            if warmup == 1:
                return self.base_lr * self.warmup_start_factor
            start = self.warmup_start_factor
            return self.base_lr * (start + (1.0 - start) * iteration / (warmup - 1))
        progress = (iteration - warmup) / (total - warmup)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2

    def is_update(self, iteration: int) -> bool:
        """Whether the optimizer steps after `iteration`."""
        return (iteration + 1) % self.accumulation == 0 or iteration + 1 == self.total_iterations

    def loss_divisor(self, iteration: int) -> int:
        """What the loss of `iteration` is divided by before its backward pass."""
        remainder = self.total_iterations % self.accumulation
        return self.accumulation if iteration < self.total_iterations - remainder else remainder

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the run."""
        return math.ceil(self.total_iterations / self.accumulation)

    def step_of(self, iteration: int) -> int:
        """Index of the optimizer step that `iteration` contributes to."""
        return iteration // self.accumulation


__all__ = ["Schedule"]
