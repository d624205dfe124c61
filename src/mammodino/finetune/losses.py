"""The fine-tuning loss: cross-entropy (single-label) or masked binary cross-entropy (multi-label).

Rare positives (cancer is ~2 % of RSNA) get either class-balanced batches
(``data.balance=sampler``, :class:`~mammodino.finetune.data.BatchPlan`) or inverse-frequency
weights here (``data.balance=loss``); not both, which would over-correct.

Example:
    >>> logits = torch.tensor([[2.0, 0.0]]); y = torch.tensor([0])
    >>> round(float(classification_loss(logits, y)), 4)     # log(1 + e^-2)
    0.1269
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def classification_loss(logits: Tensor, y: Tensor, multilabel: bool = False, class_weights: Tensor | None = None,
                        label_smoothing: float = 0.0) -> Tensor:
    """Mean loss over the batch. Multi-label: ``y`` (B, T) in {0, 1, -1}; -1 (no label for that
    task) is left out; ``class_weights`` is then the positive weight of each output."""
    logits = logits.float()
    if not multilabel:
        return F.cross_entropy(logits, y, weight=class_weights, label_smoothing=float(label_smoothing))
    labelled = y >= 0
    target = y.clamp_min(0).float()
    if label_smoothing:
        target = target * (1 - label_smoothing) + 0.5 * label_smoothing
    per = F.binary_cross_entropy_with_logits(logits, target, pos_weight=class_weights, reduction="none")
    return (per * labelled).sum() / labelled.sum().clamp_min(1)
