"""One code path for one process or many under ``torchrun``.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; we then use NCCL on GPUs and gloo on CPU.
Without them everything is a no-op, so the same trainer runs on a laptop.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from mammodino.losses.distributed import is_distributed as is_enabled, rank, world_size  # noqa: F401


def is_main() -> bool:
    return rank() == 0


def setup(device_pref: str = "auto") -> torch.device:
    """Initialise the process group when launched by torchrun; return this process's device."""
    want_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not is_enabled():
        backend = "nccl" if want_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def teardown() -> None:
    if is_enabled():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    if is_enabled():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= world_size()
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if is_enabled():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if is_enabled():
        dist.barrier()
