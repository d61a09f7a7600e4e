"""Training on several processes through PyTorch's own engine (``torchrun``, DDP).

``torchrun --nproc_per_node N -m rnnkit charlm train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` joins them into one process group (NCCL on
GPUs, gloo on CPUs). Each rank reads a different part of the data, gradients are averaged by
DistributedDataParallel, and only rank 0 writes files or prints progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0  # this process, 0 .. world_size - 1
    world_size: int = 1  # processes in the job
    local_rank: int = 0  # this process on its machine (its GPU index)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, logs and progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (or run alone)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank)


def mean(value: float, context: DistContext) -> float:
    """The average of ``value`` over all ranks (itself when alone)."""
    if not context.enabled:
        return value
    on_gpu = dist.get_backend() == "nccl"  # NCCL reduces GPU tensors only
    device = torch.device("cuda", context.local_rank) if on_gpu else torch.device("cpu")
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / context.world_size


def teardown(context: DistContext) -> None:
    """Leave the process group together: a rank that exits while another still works (rank 0
    saving) can abort the job's communication threads."""
    if context.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
