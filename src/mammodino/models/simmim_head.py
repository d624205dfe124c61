"""SimMIM's prediction head: one linear layer from a patch token to that patch's pixels.

SimMIM (microsoft/SimMIM ``models/simmim.py``) uses a 1x1 convolution to
``encoder_stride**2 * C`` channels followed by ``PixelShuffle(encoder_stride)``; for a ViT the
stride is the patch size, so that is exactly a linear map of every patch token to its
``p*p*C`` pixels. Here it is written as that linear map, with outputs in the patch layout of
``losses.mae_loss.patchify`` (row, column, channel), so both baselines compare against the
same targets. Used only in pretraining, never exported.
"""

from __future__ import annotations

from torch import Tensor, nn


class SimMIMHead(nn.Module):
    def __init__(self, encoder_dim: int, patch_size: int, in_chans: int = 1):
        super().__init__()
        self.pred = nn.Linear(encoder_dim, patch_size * patch_size * in_chans)
        nn.init.trunc_normal_(self.pred.weight, std=0.02)
        nn.init.zeros_(self.pred.bias)

    def forward(self, patch_tokens: Tensor) -> Tensor:
        """(B, N, D) normalised patch tokens -> (B, N, p*p*C) pixels."""
        return self.pred(patch_tokens)
