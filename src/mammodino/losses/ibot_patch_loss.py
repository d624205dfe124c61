r"""iBOT loss on masked patch tokens (DINOv2 semantics).

The student sees global crops with some patch embeddings replaced by the mask token; the
teacher sees them unmasked. For each masked patch p of image i::

    loss = - (1 / n_images) * sum_i sum_{p masked in i} (1 / n_masked(i)) * sum_k t_pk log softmax(s_p / tau_s)_k

so every image with at least one masked patch weighs the same whatever its mask size, and
``n_images`` counts all global crops of the batch, masked or not (DINOv2's
``forward_masked``). Teacher targets: Sinkhorn-Knopp over the masked patches of the global
batch, or softmax centering with an EMA ``center`` buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammodino.losses.distributed import all_reduce_
from mammodino.losses.sinkhorn import sinkhorn_knopp


class iBOTPatchLoss(nn.Module):  # noqa: N801  (DINOv2's name)
    def __init__(self, patch_out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, 1, patch_out_dim))

    @torch.no_grad()
    def softmax_center_teacher(self, teacher_patch_logits: Tensor, teacher_temp: float) -> Tensor:
        c = self.center.reshape(1, -1) if teacher_patch_logits.ndim == 2 else self.center
        return F.softmax((teacher_patch_logits.float() - c) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(self, teacher_logits: Tensor, teacher_temp: float,
                               n_masked_patches_tensor: Tensor | int | None = None, n_iterations: int = 3) -> Tensor:
        """Sinkhorn over the (M, K) masked-patch logits; ``n_masked_patches_tensor`` is this
        rank's count M (all-reduced here, on a copy, to the global count)."""
        if n_masked_patches_tensor is None:
            n_masked_patches_tensor = teacher_logits.shape[0]
        n = torch.as_tensor(n_masked_patches_tensor, device=teacher_logits.device,
                            dtype=torch.float32).reshape(-1)[:1].clone()
        all_reduce_(n)
        return sinkhorn_knopp(teacher_logits, teacher_temp, n_iterations, n_samples=n)

    @torch.no_grad()
    def update_center(self, teacher_patch_logits: Tensor) -> None:
        flat = teacher_patch_logits.float().reshape(-1, teacher_patch_logits.shape[-1])
        batch_sum = flat.sum(dim=0).reshape(1, 1, -1)
        count = torch.tensor([float(flat.shape[0])], device=flat.device)
        all_reduce_(batch_sum)
        all_reduce_(count)
        self.center.mul_(self.center_momentum).add_(batch_sum / count.clamp_min(1.0), alpha=1 - self.center_momentum)

    def _ce(self, teacher_probs: Tensor, student_logits: Tensor) -> Tensor:
        return torch.sum(teacher_probs * F.log_softmax(student_logits.float() / self.student_temp, dim=-1), dim=-1)

    def forward(self, student_patch_logits: Tensor, teacher_patch_probs: Tensor, student_masks_flat: Tensor) -> Tensor:
        """Dense form: (B, N, K) logits/probs and a (B, N) bool mask; mean over images of the
        per-image mean CE over its masked patches."""
        masks = student_masks_flat.float()
        loss = self._ce(teacher_patch_probs, student_patch_logits)
        loss = (loss * masks).sum(dim=-1) / masks.sum(dim=-1).clamp(min=1.0)
        return -loss.mean()

    def forward_masked(self, student_patch_logits_masked: Tensor, teacher_probs_masked: Tensor,
                       student_masks_flat: Tensor, n_masked_patches: int | None = None,
                       masks_weight: Tensor | None = None) -> Tensor:
        """Masked rows only, in the order of ``student_masks_flat[student_masks_flat]``.

        Args:
            student_patch_logits_masked: (M, K) student logits of the masked patches.
            teacher_probs_masked: (M, K) teacher targets of the same patches.
            student_masks_flat: (n_images, N) bool masks of all global crops.
            n_masked_patches: use only the first M rows (the rest is padding), optional.
            masks_weight: (M,) per-patch weight; default 1 / n_masked(image of the patch).
        """
        masks = student_masks_flat.bool()
        if masks_weight is None:
            per_image = 1.0 / masks.sum(-1).clamp(min=1).float()
            masks_weight = per_image.unsqueeze(-1).expand_as(masks)[masks]
        loss = self._ce(teacher_probs_masked, student_patch_logits_masked)
        if n_masked_patches is not None:
            loss = loss[:n_masked_patches]
            masks_weight = masks_weight[:n_masked_patches]
        return -(loss * masks_weight.to(loss.dtype)).sum() / masks.shape[0]
