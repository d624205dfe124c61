"""SimMIM's reconstruction loss: L1 on the raw pixels of the masked patches.

Exactly ``SimMIM.forward`` of microsoft/SimMIM: ``|x - x_rec|`` summed over the masked pixels
of every channel, divided by (the number of masked pixels + 1e-5) and by the channel count.
Here predictions and targets are in patch layout (``losses.mae_loss.patchify``), so the
masked pixel count is ``n_masked_patches * p * p``.
"""

from __future__ import annotations

from torch import Tensor

from mammodino.losses.mae_loss import patchify


def simmim_loss(pred: Tensor, imgs: Tensor, mask: Tensor, patch_size: int, in_chans: int = 1) -> Tensor:
    """Args: pred (B, N, p*p*C); imgs (B, C, H, W); mask (B, N) 1 / True on masked patches."""
    pred = pred.float()  # fp32 whatever the autocast (the loss is a mean over many pixels)
    target = patchify(imgs, patch_size).float()
    m = mask.to(pred.dtype).unsqueeze(-1)
    masked_pixels = m.sum() * patch_size * patch_size
    return ((pred - target).abs() * m).sum() / (masked_pixels + 1e-5) / in_chans
