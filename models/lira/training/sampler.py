"""Index order of an epoch: xtuner's `LengthGroupedSampler` or mmengine's `DefaultSampler(shuffle=True)`, resumable.

Both are deterministic in (seed, epoch) and identical on every rank before the rank's share is taken, so a run
with N ranks × A accumulation steps visits, step for step, the same samples as one rank with N × A steps (at one
sample per device and iteration).

**Length grouping** (`xtuner/dataset/samplers/length_grouped.py`): a random permutation is cut into megabatches of
`mega_batch_mult × per_device_batch_size × world_size` indices, each megabatch sorted by decreasing length;
multimodal (positive length) and text-only (negative length) samples are grouped apart, their megabatches shuffled
together with the two incomplete ones last; the longest sample overall is swapped to the front. The list is
repeated to fill `ceil(len / world / per_device_batch) × per_device_batch × world` places (round up) and rank r
takes places r, r + world, ... . `per_device_batch_size` is the config's per-device batch × accumulation, as the
original passes it.

The original's `CombineDataset` maps sampler indices through a fixed random permutation and reports
`modality_length` without `repeats`, so its grouping does not see the lengths of the samples it returns, and an
epoch visits a random subset of the repeated data; here indices and lengths are those of the repeated mix.

**Shuffle** (`DefaultSampler`, stage 1): `torch.randperm(len, generator(seed + epoch))`, padded from its start to a
multiple of the world size, rank r taking r, r + world, ... .

Resuming: `start` skips the first `start` indices of this rank's share of the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def length_grouped_indices(lengths: Sequence[int], group_batch_size: int, generator: torch.Generator) -> list[int]:
    """xtuner's `get_length_grouped_indices`: the epoch order before rank sharding (see the module docstring)."""

    def process(values: Sequence[int]) -> list[list[int]]:
        indices = torch.randperm(len(values), generator=generator).tolist()
        megabatches = [indices[i : i + group_batch_size] for i in range(0, len(values), group_batch_size)]
        return [sorted(megabatch, key=lambda i: values[i], reverse=True) for megabatch in megabatches]

    if any(length == 0 for length in lengths):
        raise ValueError("length-grouped sampling: a sample has length 0")
    if all(length > 0 for length in lengths) or all(length < 0 for length in lengths):
        megabatches = process(lengths)
    else:
        mm = [(i, length) for i, length in enumerate(lengths) if length > 0]
        lang = [(i, -length) for i, length in enumerate(lengths) if length < 0]
        mm_batches = [[mm[i][0] for i in batch] for batch in process([length for _, length in mm])]
        lang_batches = [[lang[i][0] for i in batch] for batch in process([length for _, length in lang])]
        last = mm_batches[-1] + lang_batches[-1]
        megabatches = mm_batches[:-1] + lang_batches[:-1]
        order = torch.randperm(len(megabatches), generator=generator).tolist()
        megabatches = [megabatches[i] for i in order]
        if last:
            megabatches.append(sorted(last, key=lambda i: abs(lengths[i]), reverse=True))
    maxima = [abs(lengths[megabatch[0]]) for megabatch in megabatches]
    longest = int(torch.argmax(torch.tensor(maxima)))
    megabatches[0][0], megabatches[longest][0] = megabatches[longest][0], megabatches[0][0]
    return [i for megabatch in megabatches for i in megabatch]


class TrainingSampler(Sampler[int]):
    """This rank's indices of one epoch (see the module docstring).

    Args:
        lengths: `modality_length` of every dataset index.
        per_device_batch_size: samples per rank per optimizer step (batch × accumulation), for the megabatch size and
            the round-up.
        group_by_length: length grouping (True) or a plain shuffle (False).
        mega_batch_mult: megabatch size in global batches; None for xtuner's `min(len // (4 × global batch), 50)`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        per_device_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        group_by_length: bool = True,
        mega_batch_mult: int | None = None,
    ) -> None:
        super().__init__()
        if not lengths:
            raise ValueError("the sampler needs at least one sample")
        self.lengths = list(lengths)
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.group_by_length = group_by_length
        self.epoch = 0
        self.start = 0
        total_batch = per_device_batch_size * world_size
        if group_by_length:
            iterations = math.ceil(len(self.lengths) / world_size / per_device_batch_size)
            self.num_samples = iterations * per_device_batch_size
            if mega_batch_mult is None:
                mega_batch_mult = max(min(len(self.lengths) // (total_batch * 4), 50), 1)
            self.group_batch_size = mega_batch_mult * total_batch
        else:
            self.num_samples = math.ceil(len(self.lengths) / world_size)
            self.group_batch_size = 0
        self.total_size = self.num_samples * world_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Order of `epoch`, resuming after the first `start` indices of this rank."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"sampler start {start} is outside [0, {self.num_samples}]")
        self.epoch, self.start = epoch, start

    def epoch_indices(self) -> list[int]:
        """The whole epoch of this rank (ignoring `start`)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.group_by_length:
            indices = length_grouped_indices(self.lengths, self.group_batch_size, generator)
        else:
            indices = torch.randperm(len(self.lengths), generator=generator).tolist()
        indices = (indices * (self.total_size // len(indices) + 1))[: self.total_size]
        return indices[self.rank : self.total_size : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


__all__ = ["TrainingSampler", "length_grouped_indices"]
