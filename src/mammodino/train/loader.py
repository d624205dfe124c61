"""The per-step data stream of one process: micro-batches cut from the global batch plan.

The global batch of step ``s`` is a pure function of (seed, s) (see ``mammodino.data``), so
rank ``r`` of ``W`` processes simply takes its contiguous share, split into ``grad_accum``
micro-batches. Starting the stream at any step is O(1): that is what makes resume exact and
lets a run resume on a different number of processes with the same data order.

This is the only loader: pretraining, fine-tuning, the demo, the dataset tests and
``benchmarks/loader.py`` all read batches through :func:`step_loader`.

Example:
    >>> plan = BatchPlan(dataset, cfg)
    >>> loader = build_loader(dataset, plan, cfg, start_step=100, rank=0, world_size=2)
    >>> batch = next(iter(loader))       # rank 0's first micro-batch of step 100
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import torch
from torch.utils.data import DataLoader, Sampler

from mammodino.data.dataset import collate as pretrain_collate
from mammodino.errors import ConfigError
from mammodino.processes import clean_context


class StepBatches(Sampler):
    """This rank's lists of sample keys, one per micro-batch, for steps ``start_step`` ..
    ``total_steps - 1`` (a ``batch_sampler`` for :class:`~torch.utils.data.DataLoader`).

    Args:
        batch_keys: step -> the global batch's keys (``BatchPlan.batch_keys``).
        global_batch: keys per global batch (``train.batch_size``).
        start_step, total_steps: first step to yield (resume) and the step to stop before.
        rank, world_size: this process and the number of processes.
        grad_accum: micro-batches per step and rank.
    """

    def __init__(self, batch_keys: Callable[[int], Sequence], global_batch: int, start_step: int, total_steps: int,
                 rank: int = 0, world_size: int = 1, grad_accum: int = 1):
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} of world size {world_size}")
        if global_batch % (world_size * grad_accum):
            raise ConfigError(
                f"config key 'train.batch_size' ({global_batch}) must be divisible by the number of "
                f"processes x 'train.grad_accum' ({world_size} x {grad_accum})")
        self.batch_keys = batch_keys
        self.start_step, self.total_steps = int(start_step), int(total_steps)
        self.rank, self.world_size, self.grad_accum = int(rank), int(world_size), int(grad_accum)
        self.per_rank = global_batch // world_size
        self.micro = self.per_rank // grad_accum

    def __iter__(self):
        for step in range(self.start_step, self.total_steps):
            keys = list(self.batch_keys(step))
            mine = keys[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]
            for a in range(self.grad_accum):
                yield mine[a * self.micro:(a + 1) * self.micro]

    def __len__(self):
        return max(self.total_steps - self.start_step, 0) * self.grad_accum


# what the forkserver imports once, so that each loader worker starts without importing torch
WORKER_PRELOAD = ["mammodino.train.loader", "mammodino.data.dataset"]


def worker_context(workers: int):
    """The start method of every DataLoader's workers (None without workers): a forkserver
    that has imported WORKER_PRELOAD (:mod:`mammodino.processes`). A script that builds a
    loader with workers therefore needs the usual ``if __name__ == "__main__":`` guard."""
    return clean_context(WORKER_PRELOAD) if int(workers) > 0 else None


def worker_init(_worker_id: int) -> None:
    """One cv2 / torch thread per DataLoader worker (the workers are the parallelism)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def step_loader(dataset, batches: StepBatches, workers: int, collate=None, pin_memory: bool | None = None) -> DataLoader:
    """The DataLoader every training loop uses: ``batches`` as its batch sampler, ``workers``
    processes with 4 batches prefetched each, pinned memory when a GPU is there. Workers
    start from a forkserver (:mod:`mammodino.processes`): forked, they hung in cv2 once the
    caller had run a parallel OpenCV call."""
    workers = int(workers)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        multiprocessing_context=worker_context(workers),
        worker_init_fn=worker_init if workers > 0 else None,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
    )


def build_loader(dataset, plan, cfg, start_step: int = 0, rank: int = 0, world_size: int = 1,
                 collate=pretrain_collate) -> DataLoader:
    """Pretraining's loader: rank ``rank``'s collated micro-batches of ``plan`` from
    ``start_step`` to ``train.steps``, with ``data.num_workers`` workers."""
    batches = StepBatches(plan.batch_keys, int(cfg.train.batch_size), start_step, int(cfg.train.steps),
                          rank, world_size, int(cfg.train.grad_accum))
    return step_loader(dataset, batches, int(cfg.data.num_workers), collate)
