"""Collapse monitor: small batches on medical images are where DINO runs die quietly.

Two signals, both cheap: how many prototypes the teacher actually uses (the perplexity of
its batch-averaged assignment, smoothed over steps) and how spread the teacher CLS features
are (std over the batch of L2-normalised features, mean over dimensions). A collapsed teacher
uses a handful of prototypes and maps every image to the same point.
"""

from __future__ import annotations

import math
import sys

import torch


class CollapseMonitor:
    def __init__(self, n_prototypes: int, min_prototypes_frac: float = 0.01, min_cls_std: float = 0.01,
                 momentum: float = 0.9, warn_after: int = 20, stream=None):
        self.n_prototypes = n_prototypes
        self.min_prototypes = max(2.0, min_prototypes_frac * n_prototypes)
        self.min_cls_std = min_cls_std
        self.momentum = momentum
        self.warn_after = warn_after
        self.mean_probs: torch.Tensor | None = None
        self.stream = stream or sys.stderr
        self.warned = 0
        self.steps = 0

    @torch.no_grad()
    def update(self, teacher_probs: torch.Tensor, teacher_cls: torch.Tensor) -> dict:
        """``teacher_probs`` (N, K) teacher assignments; ``teacher_cls`` (N, D) backbone CLS."""
        self.steps += 1
        batch_mean = teacher_probs.float().mean(0)
        if self.mean_probs is None or self.mean_probs.shape != batch_mean.shape:
            self.mean_probs = batch_mean.clone()
        else:
            self.mean_probs.mul_(self.momentum).add_(batch_mean, alpha=1 - self.momentum)
        p = self.mean_probs.clamp_min(1e-12)
        entropy = float(-(p * p.log()).sum())
        in_use = math.exp(entropy)
        feats = torch.nn.functional.normalize(teacher_cls.float(), dim=-1)
        cls_std = float(feats.std(0).mean()) if feats.shape[0] > 1 else float("nan")
        batch_in_use = int(teacher_probs.argmax(-1).unique().numel())
        # Per-sample entropy: at ln K every target is uniform and the DINO term teaches nothing,
        # however many prototypes the batch mean spreads over.
        q = teacher_probs.float().clamp_min(1e-12)
        sample_entropy = float(-(q * q.log()).sum(-1).mean())
        return {
            "teacher_entropy": entropy,
            "teacher_sample_entropy": sample_entropy,
            "prototypes_in_use": in_use,
            "batch_prototypes_used": batch_in_use,
            "cls_std": cls_std,
            "collapsed": self.is_collapsed(in_use, cls_std),
        }

    def is_collapsed(self, in_use: float, cls_std: float) -> bool:
        if self.steps < self.warn_after:
            return False
        return in_use < self.min_prototypes or (cls_std == cls_std and cls_std < self.min_cls_std)

    def warn(self, step: int, stats: dict) -> None:
        self.warned += 1
        print(
            f"\n!!! WARNING step {step}: the representation looks COLLAPSED: teacher uses "
            f"{stats['prototypes_in_use']:.1f} of {self.n_prototypes} prototypes (min {self.min_prototypes:.0f}), "
            f"CLS feature std {stats['cls_std']:.4f} (min {self.min_cls_std}). Try a lower lr, a higher "
            f"teacher momentum, centering=sinkhorn_knopp, or a larger batch (grad_accum). !!!\n",
            file=self.stream,
            flush=True,
        )
