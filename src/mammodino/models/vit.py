"""The Vision Transformer backbone: DINOv2's ViT with registers, for one-channel images.

Token order is ``[CLS, register_1..R, patch_1..N]`` (patches row-major). Position embeddings
cover CLS + the patch grid of ``img_size`` (registers have none, as in DINOv2) and are
resized bicubically to any input whose sides are multiples of the patch size. Masked patch
embeddings (iBOT) are replaced by ``mask_token`` before position embeddings are added.

Example:
    >>> vit = build_vit("tiny", patch_size=16, img_size=64)
    >>> out = vit.forward_features(torch.zeros(2, 1, 64, 96))
    >>> out["x_norm_patchtokens"].shape   # (2, 4 * 6, 192)
    torch.Size([2, 24, 192])
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammodino.models.layers import Block, PatchEmbed

# name -> (embed_dim, depth, num_heads)
ARCHS: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


def resample_patch_pos_embed(patch_pos: Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int],
                             antialias: bool = False) -> Tensor:
    """(1, h*w, D) position embeddings of a grid -> (1, H*W, D) of another, bicubic.

    The same function serves the forward pass and weight import, so a model imported at
    grid g gives exactly what the source model gives when run at grid g.
    """
    if tuple(src_grid) == tuple(dst_grid):
        return patch_pos
    dim = patch_pos.shape[-1]
    dtype = patch_pos.dtype
    grid = patch_pos.float().reshape(1, src_grid[0], src_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_grid), mode="bicubic", align_corners=False, antialias=antialias)
    return grid.permute(0, 2, 3, 1).reshape(1, dst_grid[0] * dst_grid[1], dim).to(dtype)


def _trunc_normal_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class VisionTransformer(nn.Module):
    """DINOv2-style ViT. See the module docstring for the token layout."""

    def __init__(self, img_size: int = 224, patch_size: int = 14, in_chans: int = 1, embed_dim: int = 384,
                 depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, layerscale_init: float | None = 1e-5,
                 num_register_tokens: int = 4, interpolate_antialias: bool = False, arch: str | None = None):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.arch = arch
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = self.num_features = embed_dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.n_blocks = depth
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.grid_size = (img_size // patch_size, img_size // patch_size)

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        n_patches = self.grid_size[0] * self.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # stochastic depth, linear over depth
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=r, layerscale_init=layerscale_init)
            for r in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.init_weights()

    def init_weights(self) -> None:
        """DINOv2's init: trunc-normal(0.02) linears and position embeddings, tiny CLS/registers."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        self.apply(_trunc_normal_init)

    # ---- tokens -------------------------------------------------------------------------
    def interpolate_pos_encoding(self, h: int, w: int) -> Tensor:
        """Position embeddings (1, 1 + h/p * w/p, D) for an h x w input."""
        grid = (h // self.patch_size, w // self.patch_size)
        pos = self.pos_embed
        if grid == self.grid_size:
            return pos
        patch = resample_patch_pos_embed(pos[:, 1:], self.grid_size, grid, self.interpolate_antialias)
        return torch.cat((pos[:, :1], patch), dim=1)

    def prepare_tokens_with_masks(self, x: Tensor, masks: Tensor | None = None) -> Tensor:
        b, _, h, w = x.shape
        x = self.patch_embed(x)
        if masks is not None:
            masks = masks.to(device=x.device, dtype=torch.bool)
            if masks.shape != x.shape[:2]:
                raise ValueError(f"masks must be (B, N) = {tuple(x.shape[:2])}, got {tuple(masks.shape)}")
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        pos = self.interpolate_pos_encoding(h, w).to(x.dtype)
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
        tokens = [cls]
        if self.register_tokens is not None:
            tokens.append(self.register_tokens.to(x.dtype).expand(b, -1, -1))
        tokens.append(x + pos[:, 1:])
        return torch.cat(tokens, dim=1)

    def _split(self, x_norm: Tensor, x_prenorm: Tensor, masks: Tensor | None) -> dict:
        r = self.num_register_tokens
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1 : r + 1],
            "x_norm_patchtokens": x_norm[:, r + 1 :],
            "x_prenorm": x_prenorm,
            "masks": masks,
        }

    # ---- forward passes ----------------------------------------------------------------
    def forward_features(self, x: Tensor | Sequence[Tensor], masks: Tensor | Sequence | None = None) -> dict | list[dict]:
        """Normalised tokens: ``x_norm_clstoken`` (B,D), ``x_norm_regtokens`` (B,R,D),
        ``x_norm_patchtokens`` (B,N,D), plus ``x_prenorm`` and ``masks``.

        A list of batches (DINOv2's ``forward_features_list``) returns a list of dicts.
        """
        if isinstance(x, (list, tuple)):
            return self.forward_features_list(x, masks)
        tokens = self.prepare_tokens_with_masks(x, masks)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self._split(self.norm(tokens), tokens, masks)

    def forward_features_visible(self, x: Tensor, visible_indices: Tensor) -> dict:
        """``forward_features`` on a subset of the patches (MAE's encoder sees visible ones only).

        ``visible_indices`` (B, K) long: row-major patch indices kept per image (the same K for
        every image). Patches are embedded and given their position embeddings first, then
        gathered, so a kept patch carries its true position; CLS and registers are always kept.
        ``x_norm_patchtokens`` is (B, K, D) in the order of ``visible_indices``.
        """
        tokens = self.prepare_tokens_with_masks(x)
        n_prefix = 1 + self.num_register_tokens
        idx = visible_indices.to(device=tokens.device, dtype=torch.long)
        if idx.ndim != 2 or idx.shape[0] != tokens.shape[0]:
            raise ValueError(f"visible_indices must be (B, K) with B = {tokens.shape[0]}, got {tuple(idx.shape)}")
        patches = tokens[:, n_prefix:].gather(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        tokens = torch.cat((tokens[:, :n_prefix], patches), dim=1)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self._split(self.norm(tokens), tokens, None)

    def forward_cls_and_patches(self, x: Tensor, masks: Tensor | None = None,
                                patch_rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Normalised CLS tokens (B, D) and the normalised patch tokens at ``patch_rows`` (M, D):
        flat indices into the B x N patches, as the iBOT collate's ``mask_indices_list``.

        What the SSL losses read, and nothing else: the last block computes its output
        projection and MLP for these tokens only (:meth:`Block.forward_rows`), which saves
        about 5 % of a training step's FLOPs at depth 12, with the same values as
        ``forward_features``.
        """
        tokens = self.prepare_tokens_with_masks(x, masks)
        b, n, _ = tokens.shape
        prefix = 1 + self.num_register_tokens
        rows = torch.arange(b, device=tokens.device) * n
        if patch_rows is not None:
            patch_rows = patch_rows.to(device=tokens.device, dtype=torch.long)
            n_patches = n - prefix
            rows = torch.cat((rows, (patch_rows // n_patches) * n + prefix + patch_rows % n_patches))
        for blk in self.blocks[:-1]:
            tokens = blk(tokens)
        if len(self.blocks):
            out = self.blocks[-1](tokens, rows=rows)
        else:
            out = tokens.reshape(b * n, -1).index_select(0, rows)
        out = self.norm(out)
        return out[:b], out[b:]

    def forward_features_list(self, x_list: Sequence[Tensor], masks_list: Sequence | None = None) -> list[dict]:
        masks_list = masks_list if masks_list is not None else [None] * len(x_list)
        return [self.forward_features(x, m) for x, m in zip(x_list, masks_list)]

    def forward(self, x: Tensor, masks: Tensor | None = None, is_training: bool = False):
        """CLS embedding (B, D); with ``is_training=True`` the full ``forward_features`` dict."""
        out = self.forward_features(x, masks)
        return out if is_training else out["x_norm_clstoken"]

    def _intermediate(self, x: Tensor, n: int | Sequence[int]) -> list[Tensor]:
        tokens = self.prepare_tokens_with_masks(x)
        wanted = set(range(len(self.blocks) - n, len(self.blocks))) if isinstance(n, int) else set(n)
        bad = [i for i in wanted if not 0 <= i < len(self.blocks)]
        if bad:
            raise ValueError(f"block indices {sorted(bad)} out of range (model has {len(self.blocks)} blocks)")
        out = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if i in wanted:
                out.append(tokens)
        return out

    def get_intermediate_layers(self, x: Tensor, n: int | Sequence[int] = 4, reshape: bool = False,
                                return_class_token: bool = False, norm: bool = True) -> tuple:
        """Outputs of the last ``n`` blocks (or of the block indices in ``n``), as DINOv2.

        Each item is the patch tokens (B, N, D) -- or (B, D, h, w) with ``reshape`` -- and,
        with ``return_class_token``, the pair (patch tokens, CLS token (B, D)). Registers are
        dropped. ``norm`` applies the final LayerNorm to every returned layer.
        """
        outputs = self._intermediate(x, n)
        if norm:
            outputs = [self.norm(o) for o in outputs]
        cls = [o[:, 0] for o in outputs]
        patches = [o[:, 1 + self.num_register_tokens :] for o in outputs]
        if reshape:
            b, _, h, w = x.shape
            p = self.patch_size
            patches = [o.reshape(b, h // p, w // p, -1).permute(0, 3, 1, 2).contiguous() for o in patches]
        if return_class_token:
            return tuple(zip(patches, cls))
        return tuple(patches)

    def get_last_selfattention(self, x: Tensor, masks: Tensor | None = None) -> Tensor:
        """Attention weights of the last block, (B, heads, T, T), tokens [CLS, registers, patches]."""
        tokens = self.prepare_tokens_with_masks(x, masks)
        for blk in self.blocks[:-1]:
            tokens = blk(tokens)
        last = self.blocks[-1]
        return last.attn.attention_weights(last.norm1(tokens))

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, patch_size={self.patch_size}, registers={self.num_register_tokens}, "
                f"grid={self.grid_size}, in_chans={self.in_chans}")


def build_vit(arch: str, patch_size: int = 14, num_register_tokens: int = 4, drop_path_rate: float = 0.0,
              layerscale_init: float | None = 1e-5, img_size: int = 224, in_chans: int = 1,
              **kwargs) -> VisionTransformer:
    """A ViT preset: ``tiny`` (192/12/3), ``small`` (384/12/6), ``base`` (768/12/12), ``large`` (1024/24/16).

    ``img_size`` sets the grid of the stored position embeddings (the global crop size in
    training); other sizes are interpolated at run time.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown ViT arch {arch!r} (choose from {', '.join(ARCHS)})")
    dim, depth, heads = ARCHS[arch]
    return VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=dim,
                             depth=depth, num_heads=heads, drop_path_rate=drop_path_rate,
                             layerscale_init=layerscale_init, num_register_tokens=num_register_tokens,
                             arch=arch, **kwargs)


def arch_of(embed_dim: int, depth: int, num_heads: int | None = None) -> str | None:
    """The preset name of a shape, or None. ``num_heads=None`` matches width and depth only
    (a weight file's shapes do not tell the head count: the qkv projection is 3D x D)."""
    for name, (dim, n, heads) in ARCHS.items():
        if (dim, n) == (embed_dim, depth) and num_heads in (None, heads):
            return name
    return None


def grid_of(n_positions: int) -> int:
    """Side of a square patch grid from a count of patch positions (error when not square)."""
    side = math.isqrt(n_positions)
    if side * side != n_positions:
        raise ValueError(f"{n_positions} patch positions do not form a square grid")
    return side
