"""Data-parallel runs under ``torchrun``: each rank predicts every N-th sample, rank 0 merges."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run. ``world_size == 1`` means a plain single-process run."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_launcher(cls) -> Distributed:
        """Read the rank layout that ``torchrun`` exports and join its process group (gloo).

        The harness only exchanges small Python objects between ranks, so it uses gloo even when the
        model runs on GPUs; each rank's model picks its own device from ``LOCAL_RANK``.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        if world_size > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group(backend="gloo", timeout=timedelta(hours=12))
        return cls(rank=rank, world_size=world_size)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, which merges and writes the outputs."""
        return self.rank == 0

    def shard(self, count: int) -> range:
        """Indices of the samples this rank predicts: every ``world_size``-th, starting at ``rank``."""
        return range(self.rank, count, self.world_size)

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); ``None`` elsewhere."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, gathered, dst=0)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def close(self) -> None:
        """Leave the process group."""
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


__all__ = ["Distributed"]
