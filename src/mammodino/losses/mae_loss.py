"""MAE's reconstruction loss: MSE on the pixels of the masked patches, optionally of
per-patch normalised pixels (``norm_pix_loss``, MAE's recommended target).

Exactly ``MaskedAutoencoderViT.forward_loss`` of facebookresearch/mae: per patch, the target
is standardised by its own mean and (unbiased) variance, ``(t - mean) / sqrt(var + 1e-6)``;
the squared error is averaged over the pixels of a patch, then over the masked patches of the
whole batch.

"""

from __future__ import annotations

import torch
from torch import Tensor


def patchify(imgs: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p*p*C): patches row-major, pixels (row, column, channel)
    within a patch (MAE's ``patchify`` layout, any H, W multiple of ``p``)."""
    b, c, h, w = imgs.shape
    p = int(patch_size)
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not a multiple of the patch size {p}")
    x = imgs.reshape(b, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def mae_loss(pred: Tensor, imgs: Tensor, mask: Tensor, patch_size: int, norm_pix: bool = True,
             eps: float = 1e-6) -> Tensor:
    """Mean over masked patches of the per-patch mean squared error.

    Args:
        pred: (B, N, p*p*C) decoder output.
        imgs: (B, C, H, W) the (normalised) input crops.
        mask: (B, N), 1 / True where the patch is scored (masked).
        patch_size: p.
        norm_pix: standardise each target patch by its own mean and unbiased variance.
        eps: MAE's 1e-6 inside the square root.
    """
    # fp32 whatever the autocast: per-patch standardisation and the mean are precision-sensitive
    pred = pred.float()
    target = patchify(imgs, patch_size).float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + eps) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp_min(1.0)
