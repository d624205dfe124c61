"""Sinkhorn-Knopp teacher targets (SwAV / DINOv2), in one process or across ranks.

The teacher's scores ``exp(logits / T)`` form a K x B matrix Q (K prototypes, B samples of
the *global* batch). Alternating row and column normalisation pushes Q towards the
transport polytope: every prototype gets the same total mass 1/K and every sample 1/B, so
the teacher cannot collapse onto a few prototypes. After the loop the columns are rescaled
to sum to 1 (one distribution per sample). Sums over samples are all-reduced, so the result
on each rank equals what one process would compute on the concatenated batch.
"""

from __future__ import annotations

import torch

from mammodino.losses.distributed import all_reduce_


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, temperature: float, n_iterations: int = 3,
                   n_samples: torch.Tensor | int | None = None) -> torch.Tensor:
    """(B, K) logits -> (B, K) assignments whose rows sum to 1.

    Args:
        logits: this rank's teacher logits (B, K).
        temperature: teacher temperature T.
        n_iterations: Sinkhorn iterations (DINOv2: 3).
        n_samples: global number of samples (all ranks). Default: all-reduced B. iBOT passes
            its global count of masked patches, as DINOv2 does.
    """
    logits = logits.float()
    scores = logits / temperature
    # Subtracting the global maximum changes nothing after normalisation and keeps exp finite.
    top = scores.max().reshape(1) if scores.numel() else scores.new_zeros(1)
    all_reduce_(top, op="max")
    q = torch.exp(scores - top).t()  # K x B
    k = q.shape[0]
    if n_samples is None:
        total = torch.tensor([float(q.shape[1])], device=q.device)
        all_reduce_(total)
    else:
        total = torch.as_tensor(n_samples, device=q.device, dtype=torch.float32).reshape(1).clone()
    tiny = torch.finfo(q.dtype).tiny
    sum_q = q.sum().reshape(1)
    all_reduce_(sum_q)
    q /= sum_q.clamp_min(tiny)
    for _ in range(n_iterations):
        rows = q.sum(dim=1, keepdim=True)  # each prototype gets total mass 1/K
        all_reduce_(rows)
        q /= rows.clamp_min(tiny)
        q /= k
        q /= q.sum(dim=0, keepdim=True).clamp_min(tiny)  # each sample gets mass 1/B
        q /= total
    q *= total  # columns sum to 1: one distribution per sample
    return q.t()
