r"""DINO loss on the CLS token: cross-entropy from teacher targets to student predictions.

For a student logit vector ``s`` and a teacher target distribution ``t`` (both over K
prototypes)::

    CE(t, s) = - sum_k t_k * log softmax(s / tau_s)_k          (tau_s = student_temp, 0.1)

Teacher targets come from either

* Sinkhorn-Knopp (:meth:`DINOLoss.sinkhorn_knopp_teacher`, the default, 3 iterations), or
* softmax centering: ``softmax((l - c) / tau_t)`` with ``c`` an EMA of the mean teacher
  logit (``center`` buffer, momentum 0.9, batch mean all-reduced across ranks).

Multi-crop normalisation (DINOv2, ``ssl_meta_arch.py``): with G global and L local crops,
every pair (student crop i, teacher global crop j) with i != j is one term, i.e.
G(G-1) global-global terms + G*L local-global terms, each the batch mean of CE; the loss
is their sum divided by their number (2 + 16 = 18 for 2 global + 8 local crops). See
:meth:`DINOLoss.forward_multicrop`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammodino.losses.distributed import all_reduce_
from mammodino.losses.sinkhorn import sinkhorn_knopp


class DINOLoss(nn.Module):
    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    @torch.no_grad()
    def softmax_center_teacher(self, teacher_logits: Tensor, teacher_temp: float) -> Tensor:
        """softmax((teacher_logits - center) / teacher_temp), rows sum to 1."""
        return F.softmax((teacher_logits.float() - self.center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(self, teacher_logits: Tensor, teacher_temp: float, n_iterations: int = 3) -> Tensor:
        """Balanced assignments over the global batch (all ranks); rows sum to 1."""
        return sinkhorn_knopp(teacher_logits, teacher_temp, n_iterations)

    @torch.no_grad()
    def update_center(self, teacher_logits: Tensor) -> None:
        """center <- m * center + (1 - m) * mean of the teacher logits over the global batch.

        Applied at once (DINOv2 defers it to the next step with an async all-reduce; the
        result is the same, but a checkpoint written in between would miss the update).
        """
        batch_sum = teacher_logits.float().sum(dim=0, keepdim=True)
        count = torch.tensor([float(teacher_logits.shape[0])], device=batch_sum.device)
        all_reduce_(batch_sum)
        all_reduce_(count)
        batch_center = batch_sum / count.clamp_min(1.0)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

    def forward(self, student_logits_list: Sequence[Tensor], teacher_probs_list: Sequence[Tensor]) -> Tensor:
        """Sum over every (student, teacher) pair of the batch-mean cross-entropy (DINOv2)."""
        total = 0.0
        for s in student_logits_list:
            lsm = F.log_softmax(s.float() / self.student_temp, dim=-1)
            for t in teacher_probs_list:
                total = total - torch.sum(t * lsm, dim=-1).mean()
        return total

    def multicrop_terms(self, student_global_logits: Tensor, student_local_logits: Tensor | None,
                        teacher_global_probs: Tensor, n_global_crops: int = 2) -> tuple[Tensor, Tensor, int]:
        """(sum of global-global pair terms, sum of local-global pair terms, number of terms).

        The pieces of :meth:`forward_multicrop`, so a trainer can log the global and local
        parts of the one loss it optimises; same arguments.
        """
        g = n_global_crops
        teachers = teacher_global_probs.chunk(g)
        students = student_global_logits.chunk(g)
        locals_ = student_local_logits.chunk(student_local_logits.shape[0] // teachers[0].shape[0]) \
            if student_local_logits is not None and student_local_logits.numel() else ()
        zero = student_global_logits.sum() * 0.0
        global_sum = zero
        for i, s in enumerate(students):
            global_sum = global_sum + self.forward([s], [t for j, t in enumerate(teachers) if j != i])
        local_sum = self.forward(list(locals_), list(teachers)) + zero if locals_ else zero
        return global_sum, local_sum, g * (g - 1) + g * len(locals_)

    def forward_multicrop(self, student_global_logits: Tensor, student_local_logits: Tensor | None,
                          teacher_global_probs: Tensor, n_global_crops: int = 2) -> Tensor:
        """DINOv2's normalised multi-crop DINO loss.

        Args:
            student_global_logits: (G*B, K), crop 1 of every sample, then crop 2, ...
            student_local_logits: (L*B, K) in the same crop-major order, or None.
            teacher_global_probs: (G*B, K) teacher targets of the global crops, same order
                (NOT swapped: the pairing below skips same-crop pairs itself).
            n_global_crops: G.

        Returns:
            sum over pairs (student crop i, teacher global crop j != i) of mean CE, divided by
            the number of such pairs, G*(G-1) + G*L.
        """
        global_sum, local_sum, n_terms = self.multicrop_terms(
            student_global_logits, student_local_logits, teacher_global_probs, n_global_crops)
        if n_terms == 0:
            return student_global_logits.sum() * 0.0
        return (global_sum + local_sum) / n_terms
