"""Learning-rate schedule and accumulation (mmengine semantics, lira-model.md §10) and the epoch order
(xtuner `LengthGroupedSampler`, mmengine `DefaultSampler`)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from models.lira.training.sampler import TrainingSampler, length_grouped_indices
from models.lira.training.schedule import Schedule


def _schedule(iterations: int, accumulation: int = 4, world: int = 1, ratio: float = 0.03) -> Schedule:
    return Schedule.build(
        base_lr=2.0,
        iterations_per_epoch=iterations,
        epochs=1,
        warmup_ratio=ratio,
        warmup_start_factor=1e-5,
        eta_min=0.0,
        accumulation=accumulation,
        world_size=world,
    )


def test_warmup_then_cosine_by_iteration() -> None:
    schedule = _schedule(100)  # W = int(0.03 * 100) = 3 warm-up iterations, T_max = 97
    assert schedule.warmup_iterations == 3
    # LinearLR: total_iters = end - begin - 1 = 2, factor 1e-5 → 1
    assert schedule.global_lr(0) == pytest.approx(2.0 * 1e-5)
    assert schedule.global_lr(1) == pytest.approx(2.0 * (1e-5 + (1 - 1e-5) / 2))
    assert schedule.global_lr(2) == pytest.approx(2.0)
    # CosineAnnealingLR from iteration 3: 2 · (1 + cos(π (t - 3) / 97)) / 2
    assert schedule.global_lr(3) == pytest.approx(2.0)
    assert schedule.global_lr(51) == pytest.approx(1 + math.cos(math.pi * 48 / 97))
    assert schedule.global_lr(99) == pytest.approx(1 + math.cos(math.pi * 96 / 97))
    assert _schedule(20).warmup_iterations == 0 and _schedule(20).global_lr(0) == pytest.approx(2.0)
    assert _schedule(40).warmup_iterations == 1 and _schedule(40).global_lr(0) == pytest.approx(2e-5)


def test_accumulation_groups_and_loss_divisors() -> None:
    schedule = _schedule(10, accumulation=4)
    assert [i for i in range(10) if schedule.is_update(i)] == [3, 7, 9]
    assert [schedule.loss_divisor(i) for i in range(10)] == [4] * 8 + [2] * 2  # mmengine's last, short group
    assert schedule.total_steps == 3 and schedule.step_of(8) == 2


def test_rate_of_a_step_does_not_depend_on_the_split_over_ranks() -> None:
    one, two = _schedule(96, accumulation=4), _schedule(48, accumulation=2, world=2)
    updates_one = [i for i in range(96) if one.is_update(i)]
    updates_two = [i for i in range(48) if two.is_update(i)]
    assert len(updates_one) == len(updates_two) == 24
    assert [one.lr(i) for i in updates_one] == [two.lr(i) for i in updates_two]


def _check_grouping(lengths: list[int], order: list[int], group: int) -> None:
    assert sorted(order) == list(range(len(lengths)))
    assert abs(lengths[order[0]]) == max(abs(length) for length in lengths)  # longest first
    for start in range(0, len(order), group):
        chunk = [abs(lengths[i]) for i in order[start : start + group]]
        assert chunk[1:] == sorted(chunk[1:], reverse=True)  # each megabatch longest first (bar the swapped head)


def test_length_grouped_megabatches() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 500) for _ in range(103)]
    order = length_grouped_indices(lengths, 16, torch.Generator().manual_seed(3))
    _check_grouping(lengths, order, 16)
    assert order == length_grouped_indices(lengths, 16, torch.Generator().manual_seed(3))
    assert order != length_grouped_indices(lengths, 16, torch.Generator().manual_seed(4))


def test_modalities_are_grouped_apart() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(1, 300) for _ in range(40)] + [-rng.randint(1, 300) for _ in range(24)]
    rng.shuffle(lengths)
    order = length_grouped_indices(lengths, 8, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(64))
    # 5 multimodal and 3 text-only megabatches of 8; all but the last of each are shuffled together, and the two last
    # ones form the final megabatch of 16
    head = [{lengths[i] > 0 for i in order[start : start + 8]} for start in range(0, 48, 8)]
    assert sum(len(kinds) > 1 for kinds in head) <= 2  # only the longest-first swap can mix two of them
    tail = [lengths[i] for i in order[48:]]
    assert len(tail) == 16 and sum(length > 0 for length in tail) in (7, 8, 9)  # 8 of each, bar the swap


def test_ranks_share_the_one_rank_order() -> None:
    lengths = [random.Random(2).randint(1, 99) for _ in range(37)]
    single = TrainingSampler(lengths, per_device_batch_size=8, seed=5)
    ranks = [TrainingSampler(lengths, per_device_batch_size=4, rank=r, world_size=2, seed=5) for r in (0, 1)]
    assert single.group_batch_size == ranks[0].group_batch_size == 8  # min(37 // 32, 50) = 1 global batch
    # round up: ceil(37 / 1 / 8) = 5 batches of 8 → 40 places; ceil(37 / 2 / 4) = 5 → 20 per rank
    assert len(single) == 40 and len(ranks[0]) == len(ranks[1]) == 20
    whole = list(single)
    assert list(ranks[0]) == whole[0::2] and list(ranks[1]) == whole[1::2]
    assert whole[37:] == whole[:3]  # the round-up repeats from the start
    single.set_epoch(1)
    assert list(single) != whole
    single.set_epoch(0, start=13)
    assert list(single) == whole[13:] and len(single) == 27


def test_shuffle_sampler_is_the_default_sampler() -> None:
    lengths = [1] * 11
    single = TrainingSampler(lengths, per_device_batch_size=4, seed=7, group_by_length=False)
    expected = torch.randperm(11, generator=torch.Generator().manual_seed(7)).tolist()
    assert list(single) == expected
    ranks = [
        TrainingSampler(lengths, per_device_batch_size=2, rank=r, world_size=2, seed=7, group_by_length=False)
        for r in (0, 1)
    ]
    padded = expected + expected[:1]  # ceil(11 / 2) = 6 per rank
    assert list(ranks[0]) == padded[0::2] and list(ranks[1]) == padded[1::2]
