"""Data-parallel training across processes with ``torch.distributed`` (started by ``torchrun``).

``torchrun --nproc_per_node N -m llmlab.cli train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK in
each process's environment; `setup` joins the process group (gloo on CPU, NCCL on GPUs) and
picks the device. The model is wrapped in ``DistributedDataParallel``, which averages gradients
over the ranks after backward; every rank draws the same global batch from the same seed and
keeps its own rows (llmlab.train.data.BatchSampler), so N processes with a per-rank batch B/N
compute the same update as one process with batch B. Rank 0 alone writes files.
Tests: tests/train/test_pretrain.py (2 CPU processes with gloo equal one process).
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(device: str = "auto", local_rank: int = 0) -> str:
    if device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return device


def setup(device: str = "auto") -> Dist:
    """Join the process group when WORLD_SIZE > 1 (set by torchrun); else a single-process Dist."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.startswith("cuda") else "gloo")
    if dev.startswith("cuda"):
        torch.cuda.set_device(dev)
    return Dist(rank, world, local, dev)


def mean(value: float, d: Dist) -> float:
    """The average of a number over all ranks (the number itself in one process)."""
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t.item()) / d.world


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
