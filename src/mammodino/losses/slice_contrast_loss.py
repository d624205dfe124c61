r"""DBT adjacent-slice InfoNCE: neighbouring tomosynthesis slices embed close together.

For a DBT sample i, global crop 1 is slice z and global crop 2 is slice z +- d of the same
volume at the same box. With the student embedding q_i of one slice (projector + predictor,
L2-normalised) and the teacher embedding k_j of the other slice (projector, L2-normalised,
no gradient)::

    l_i = -log( exp(q_i . k_i / tau) / sum_{j in DBT(global batch)} exp(q_i . k_j / tau) )

tau = 0.1. The negatives k_j (j != i) are the teacher embeddings of every other DBT
sample of the *global* batch, gathered from all ranks (they carry no gradient, so a plain
all_gather suffices). Only samples with ``is_dbt`` count; FFDM rows are ignored. With fewer
than two DBT samples in the global batch there is no negative and the loss is an exact 0
that keeps the autograd graph (``z.sum() * 0``), so every rank runs the same backward.

Reduction: mean of l_i over the DBT samples of the global batch. Under DDP each rank
returns ``sum_local(l_i) * world_size / n_dbt_global``; DDP's gradient averaging then
yields exactly the gradient of the global mean (and the mean of the per-rank values is the
global mean, for logging).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammodino.losses.distributed import all_gather_rows, world_size


class SliceContrastLoss(nn.Module):
    """``loss = SliceContrastLoss(0.1)(student_z, teacher_z, is_dbt)``.

    Two input forms:

    * ``student_z``, ``teacher_z`` of shape (B, D) with ``is_dbt`` (B,): one direction, row i
      of the student is paired with row i of the teacher (the caller has already put the
      *other* slice of sample i in teacher row i).
    * shape (2B, D), both in crop order ``[crop 1 of every sample; crop 2 ...]`` (the
      collate order, not swapped): symmetric, ``0.5 * (NCE(s1, t2) + NCE(s2, t1))``.
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_z: Tensor, teacher_z: Tensor, is_dbt: Tensor) -> Tensor:
        b = is_dbt.shape[0]
        if student_z.shape[0] != teacher_z.shape[0]:
            raise ValueError(f"student_z has {student_z.shape[0]} rows but teacher_z {teacher_z.shape[0]}")
        if student_z.shape[0] == 2 * b and b > 0:
            s1, s2 = student_z.chunk(2)
            t1, t2 = teacher_z.chunk(2)
            return 0.5 * (self.one_way(s1, t2, is_dbt) + self.one_way(s2, t1, is_dbt))
        if student_z.shape[0] == b:
            return self.one_way(student_z, teacher_z, is_dbt)
        raise ValueError(f"is_dbt has {b} rows; embeddings must have {b} or {2 * b} rows, got {student_z.shape[0]}")

    def one_way(self, student_z: Tensor, teacher_z: Tensor, is_dbt: Tensor) -> Tensor:
        is_dbt = is_dbt.to(device=student_z.device, dtype=torch.bool)
        q = F.normalize(student_z.float()[is_dbt], dim=-1)
        k_local = F.normalize(teacher_z.detach().float()[is_dbt], dim=-1)
        keys, offset = all_gather_rows(k_local)  # collective: every rank calls it
        if keys.shape[0] < 2 or q.shape[0] == 0:
            return student_z.sum() * 0.0
        logits = q @ keys.t() / self.temperature
        targets = torch.arange(q.shape[0], device=q.device) + offset
        nce = F.cross_entropy(logits, targets, reduction="sum")
        return nce * (world_size() / keys.shape[0])
