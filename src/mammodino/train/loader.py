"""The per-step data stream of one process: micro-batches cut from the global batch plan.

The global batch of step ``s`` is a pure function of (seed, s) (see ``mammodino.data``), so
rank ``r`` of ``W`` processes simply takes its contiguous share, split into ``grad_accum``
micro-batches. Starting the stream at any step is O(1): that is what makes resume exact and
lets a run resume on a different number of processes with the same data order.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

from mammodino.data.dataset import worker_init


class StepBatchSampler(Sampler):
    def __init__(self, batch_keys, global_batch: int, start_step: int, total_steps: int,
                 rank: int = 0, world_size: int = 1, grad_accum: int = 1):
        if global_batch % (world_size * grad_accum):
            raise ValueError(
                f"train.batch_size={global_batch} must be divisible by processes x grad_accum "
                f"({world_size} x {grad_accum})")
        self.batch_keys = batch_keys
        self.start_step, self.total_steps = start_step, total_steps
        self.rank, self.world_size, self.grad_accum = rank, world_size, grad_accum
        self.per_rank = global_batch // world_size
        self.micro = self.per_rank // grad_accum

    def __iter__(self):
        for step in range(self.start_step, self.total_steps):
            keys = list(self.batch_keys(step))
            mine = keys[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]
            for a in range(self.grad_accum):
                yield mine[a * self.micro:(a + 1) * self.micro]

    def __len__(self):
        return (self.total_steps - self.start_step) * self.grad_accum


def build_loader(dataset, plan, cfg, start_step: int, rank: int, world_size: int, collate) -> DataLoader:
    sampler = StepBatchSampler(plan.batch_keys, cfg.train.batch_size, start_step, cfg.train.steps,
                               rank, world_size, cfg.train.grad_accum)
    workers = int(cfg.data.num_workers)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=worker_init,  # one cv2/torch thread per worker: the workers are the parallelism
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
    )
