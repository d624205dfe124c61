"""MAE's decoder: a small transformer that fills the masked patches back in.

As in facebookresearch/mae (``MaskedAutoencoderViT.forward_decoder``): the encoder's tokens
(CLS, here also the registers, and the K visible patches) are projected to the decoder width,
a shared learnt ``mask_token`` is placed at every hidden patch position, fixed 2-D sin-cos
position embeddings are added (zero for CLS/registers), then ``depth`` pre-norm blocks, a
LayerNorm and a linear layer to the ``patch_size**2 * in_chans`` pixels of every patch. The
decoder is used only in pretraining and is never exported.

Sin-cos embeddings are computed for the grid of the input, so any crop size works (MAE
stores them as a frozen parameter of one grid). Linear layers use MAE's xavier-uniform init.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from mammodino.models.layers import Block


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """(P,) positions -> (P, dim): [sin(pos * w_i), cos(pos * w_i)], w_i = 1 / 10000^(i / (dim/2))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.to(torch.float64)[:, None] * omega[None]
    return torch.cat((angles.sin(), angles.cos()), dim=1)


@lru_cache(maxsize=16)
def sincos_2d(dim: int, grid_h: int, grid_w: int) -> Tensor:
    """(grid_h * grid_w, dim) row-major: half the channels encode the column, half the row
    (MAE's ``get_2d_sincos_pos_embed``)."""
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    emb = torch.cat((sincos_1d(dim // 2, xs.reshape(-1)), sincos_1d(dim // 2, ys.reshape(-1))), dim=1)
    return emb.float()


class MAEDecoder(nn.Module):
    """Encoder tokens of the visible patches -> pixels of every patch, (B, N, p*p*C)."""

    def __init__(self, encoder_dim: int, patch_size: int, in_chans: int = 1, dim: int = 512, depth: int = 8,
                 num_heads: int = 16, mlp_ratio: float = 4.0, n_prefix_tokens: int = 1):
        super().__init__()
        self.n_prefix = n_prefix_tokens
        self.dim = dim
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias=True, layerscale_init=None)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, patch_size * patch_size * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, tokens: Tensor, visible_indices: Tensor, grid: tuple[int, int]) -> Tensor:
        """``tokens`` (B, n_prefix + K, D_enc): CLS/registers then the visible patches in the order
        of ``visible_indices`` (B, K); ``grid`` (h, w) of the crop. Returns (B, h*w, p*p*C)."""
        x = self.embed(tokens)
        b, _, d = x.shape
        n = grid[0] * grid[1]
        prefix, visible = x[:, : self.n_prefix], x[:, self.n_prefix :]
        idx = visible_indices.to(device=x.device, dtype=torch.long).unsqueeze(-1).expand(-1, -1, d)
        patches = torch.scatter(self.mask_token.to(x.dtype).expand(b, n, d), 1, idx, visible)
        patches = patches + sincos_2d(d, int(grid[0]), int(grid[1])).to(device=x.device, dtype=x.dtype)
        x = torch.cat((prefix, patches), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.pred(self.norm(x))[:, self.n_prefix :]
