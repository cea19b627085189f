"""This process's place in a training run: rank, device and the process group.

`torchrun --nproc_per_node N -m models.lira.training.train ...` and `accelerate launch -m ...` both export `RANK`,
`LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`; the process group is joined from them (nccl on CUDA,
gloo on CPU unless the config names a backend). Without them the run is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from harness.errors import UserError
from models.lira.training.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    """Rank layout and device of this process."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def start(cls, config: TrainConfig) -> Runtime:
        """Read the launcher's environment, pick the device, join the process group when there are several ranks."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        wanted = config.device
        if wanted == "cuda" and not torch.cuda.is_available():
            raise UserError("training config: device is 'cuda' but no CUDA device is available")
        if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if world_size > 1 and not dist.is_initialized():
            backend = config.distributed.backend
            if backend == "auto":
                backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
        return cls(rank=rank, local_rank=local_rank, world_size=world_size, device=device)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather_objects(self, obj: object) -> list[object]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        gathered: list[object] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: object) -> object:
        if not self.distributed:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def stop(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["Runtime"]
