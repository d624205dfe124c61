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


def prepare_for_training(model, cfg, device: torch.device):
    """The one place a model is wrapped for a process group; returns (student to call, fsdp).

    Like DINOv2's ``SSLMetaArch.prepare_for_distributed_training``, it is called once, after
    the weights are loaded and before the optimizer is built (FSDP2 swaps parameters for
    sharded ones). One process: the plain student. ``torchrun``: DDP, or FSDP2 (one
    ``fully_shard`` per block, student and teacher alike, so the EMA runs on matching local
    shards) when ``train.fsdp`` is true, or ``auto`` for the large model. ``train.compile``
    then compiles the student's forward (the teacher, under no_grad, runs eagerly).
    """
    student, fsdp = _wrap(model, cfg, device)
    if cfg.train.compile:
        student = torch.compile(student)
    return student, fsdp


def _wrap(model, cfg, device: torch.device):
    if not is_enabled():
        return model.student, False
    use_fsdp = cfg.train.fsdp is True or (cfg.train.fsdp == "auto" and cfg.model.arch == "large")
    if use_fsdp:
        from torch.distributed.fsdp import fully_shard

        for net in (model.student, getattr(model, "teacher", None)):  # MAE / SimMIM have no teacher
            if net is None:
                continue
            for block in net.backbone.blocks:
                fully_shard(block)
            # the teacher has no backward: its root must reshard right after its forward,
            # or the EMA would see gathered (unsharded) parameters
            fully_shard(net, reshard_after_forward=True)
        return model.student, True
    from torch.nn.parallel import DistributedDataParallel as DDP

    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    return DDP(model.student, broadcast_buffers=False, **kwargs), False


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
