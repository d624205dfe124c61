"""The building blocks of the ViT, named as in DINOv2 so its checkpoints map one to one.

``PatchEmbed.proj``, ``Attention.qkv`` / ``Attention.proj``, ``Mlp.fc1`` / ``Mlp.fc2``,
``LayerScale.gamma`` and ``Block.norm1 / attn / ls1 / norm2 / mlp / ls2`` are exactly the
parameter names of ``facebookresearch/dinov2`` (and of timm's DINOv2 models), so importing
their weights is a near-identity key mapping.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammodino.models import gemm


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b with all three GEMMs (forward, dx, dW) in oneDNN."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        ctx.save_for_backward(x2, weight)
        ctx.in_shape = x.shape
        ctx.has_bias = bias is not None
        y = gemm.onednn_mm_t(x2, weight, bias)
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x2, weight = ctx.saved_tensors
        g2 = grad_out.reshape(-1, grad_out.shape[-1]).contiguous()
        grad_x = grad_w = grad_b = None
        # oneDNN reads the transposed operands through their strides: no copies.
        if ctx.needs_input_grad[0]:
            grad_x = gemm.onednn_mm_t(g2, weight.t()).reshape(ctx.in_shape)
        if ctx.needs_input_grad[1]:
            grad_w = gemm.onednn_mm_t(g2.t(), x2.t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(0)
        return grad_x, grad_w, grad_b


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) whose fp32 CPU GEMMs take the path
    measured fastest on this machine (``models.gemm``: oneDNN or PyTorch's own).

    ``F.linear`` on GPU, under autocast, in other dtypes, while compiling, and for empty inputs.
    """

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear``, through oneDNN where that measured faster here (see :class:`Linear`)."""
    if (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.numel() > 0 and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
            and gemm.choose() == "onednn"):
        return _OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class PatchEmbed(nn.Module):
    """Image (B, C, H, W) -> patch tokens (B, H/p * W/p, D), row-major over the patch grid."""

    def __init__(self, patch_size: int = 14, in_chans: int = 1, embed_dim: int = 384):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            # A strided conv would silently drop the right/bottom border: say so instead.
            raise ValueError(f"input size {h}x{w} is not a multiple of the patch size {p}")
        if c != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channel(s), got {c} (input shape {tuple(x.shape)})")
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU bf16 convolutions run their backward ~8x slower than fp32 (oneDNN, measured):
            # the patch embedding is 1 % of the FLOPs, so it stays fp32 under autocast.
            with torch.autocast("cpu", enabled=False):
                return self.proj(x.float()).flatten(2).transpose(1, 2)
        return self.proj(x).flatten(2).transpose(1, 2)


# Under CPU bf16 autocast, SDPA's bf16 kernel is 4-8x slower than the explicit
# softmax(q k^T) v on bf16 GEMMs for the short token sequences of training crops (41 and 14
# tokens: 13.7 vs 3.1 ms, 261 tokens: 62 vs 37 ms fwd+bwd), and faster from ~1,000 tokens
# (132 vs 354 ms), where the (T, T) matrix also grows large (README, Benchmarks).
CPU_BF16_EXPLICIT_MAX_TOKENS = 512
# In fp32 the CPU flash kernel loses on short sequences only: forward + backward on a
# 2-core AMD EPYC (Zen 5; AVX-512 and AVX2-emulated alike) the explicit path is 1.4-1.8x
# faster at 14-53 tokens (cpu-tiny's crops, ViT-S/14's local crops; the flash kernel also
# gains least from a second thread there), even at 197-261 tokens in isolation and no
# faster inside the ViT-S/14 step; forward only it is even at 53-101 tokens and 2x slower
# from 145 (README, Benchmarks).
CPU_FP32_EXPLICIT_MAX_TOKENS = 64


def attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """softmax(q k^T * scale) v over (B, heads, T, d), by the faster kernel for the dtype.

    SDPA everywhere except on CPU for short sequences: bf16 (autocast) at up to
    ``CPU_BF16_EXPLICIT_MAX_TOKENS`` tokens, fp32 at up to ``CPU_FP32_EXPLICIT_MAX_TOKENS``;
    there two GEMMs with an fp32 softmax between them.
    """
    if q.device.type == "cpu" and q.shape[-2] <= _explicit_max_tokens(q.dtype):
        logits = (q * scale) @ k.transpose(-2, -1)
        return logits.softmax(dim=-1, dtype=torch.float32).to(v.dtype) @ v
    return F.scaled_dot_product_attention(q, k, v)


def _explicit_max_tokens(dtype: torch.dtype) -> int:
    if dtype == torch.bfloat16 and torch.is_autocast_enabled("cpu"):
        return CPU_BF16_EXPLICIT_MAX_TOKENS
    if dtype == torch.float32 and not torch.compiler.is_compiling():
        return CPU_FP32_EXPLICIT_MAX_TOKENS
    return 0


class Attention(nn.Module):
    """Multi-head self-attention through :func:`attention`.

    SDPA picks a fused kernel (flash / memory-efficient on GPU, a flash-style kernel on CPU)
    and never materialises the (T, T) matrix; on CPU short sequences take the explicit
    path, measured faster there. :meth:`attention_weights` gives the (T, T) matrix itself,
    for attention maps.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)

    def forward(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """(B, T, D) -> (B, T, D); with ``rows`` (flat indices into B*T) only those tokens'
        outputs, (M, D): every token is still attended to, the output projection runs on M rows."""
        b, n, c = x.shape
        q, k, v = self._qkv(x)
        x = attention(q, k, v, self.scale)
        if rows is not None:
            return self.proj(x[rows // n, :, rows % n].reshape(rows.shape[0], c))
        return self.proj(x.transpose(1, 2).reshape(b, n, c))

    def attention_weights(self, x: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)) as (B, heads, T, T)."""
        q, k, _ = self._qkv(x)
        return ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim, bias=bias)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel residual scale (CaiT); small init keeps deep ViTs stable early in training."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


_draws = threading.local()


@contextlib.contextmanager
def sample_generator(gen: torch.Generator | None):
    """Stochastic depth on this thread draws from ``gen`` inside the block (None: the global
    generator), so two half-batches on two threads draw reproducibly (train.half_batches)."""
    before = getattr(_draws, "gen", None)
    _draws.gen = gen
    try:
        yield
    finally:
        _draws.gen = before


def _generator() -> torch.Generator | None:
    return getattr(_draws, "gen", None)


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep, generator=_generator())
        return x * mask / keep


def drop_add_residual_stochastic_depth(x: Tensor, residual_func: Callable[[Tensor], Tensor], drop_ratio: float) -> Tensor:
    """x + residual on a random subset of ``(1 - drop_ratio) * B`` samples only (DINOv2).

    Same expectation as DropPath but the dropped samples cost nothing: at drop rate 0.4
    (DINOv2 ViT-L) it saves a fifth of the student's block compute.
    """
    b = x.shape[0]
    idx = kept_samples(b, drop_ratio, x.device)
    residual = residual_func(x[idx])
    out = torch.index_add(x.flatten(1), 0, idx, residual.flatten(1).to(x.dtype), alpha=b / idx.numel())
    return out.view_as(x)


def drop_add_residual_kept_rows(x: Tensor, residual_func: Callable[[Tensor], Tensor], drop_ratio: float) -> Tensor:
    """``x + DropPath(residual_func(x))`` with the branch run on the kept samples only.

    Same per-sample Bernoulli draw, values and gradients as :class:`DropPath` (a dropped
    sample adds exactly 0), but a dropped sample's branch costs nothing: at DINOv2's ViT-S/B
    rates (<= 0.1, where its own code computes every sample) that is ``drop_ratio`` of the
    branch's work. CPU only: the kept count is data-dependent, which would cost a GPU a
    host sync per block (there, and while compiling, :func:`stochastic_depth_kept_rows`
    says no and DropPath runs).
    """
    b = x.shape[0]
    keep = 1.0 - drop_ratio
    kept = x.new_empty(b).bernoulli_(keep, generator=_generator()).nonzero().flatten()
    if kept.numel() == b:
        return x + residual_func(x) / keep
    if kept.numel() == 0:
        return x
    residual = residual_func(x.index_select(0, kept)) / keep
    return x.index_add(0, kept, residual.to(x.dtype))


def stochastic_depth_kept_rows(x: Tensor) -> bool:
    """Whether :func:`drop_add_residual_kept_rows` may run here (CPU, eager)."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def kept_samples(b: int, drop_ratio: float, device) -> Tensor:
    """The samples whose residual branch runs under DINOv2's subset trick: a random
    ``max(int(B * (1 - drop_ratio)), 1)`` of them (one draw, shared by both block paths)."""
    return torch.randperm(b, device=device, generator=_generator())[:max(int(b * (1 - drop_ratio)), 1)]


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layerscale_init: float | None = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.ls1 = LayerScale(dim, layerscale_init) if layerscale_init else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init) if layerscale_init else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.sample_drop_ratio = drop_path

    def _attn_residual(self, x: Tensor) -> Tensor:
        return self.ls1(self.attn(self.norm1(x)))

    def _ffn_residual(self, x: Tensor) -> Tensor:
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """(B, T, D) -> (B, T, D); with ``rows`` see :meth:`forward_rows` (an argument of
        ``forward``, so the hooks of a block wrapped by FSDP2 run as for any call)."""
        if rows is not None:
            return self.forward_rows(x, rows)
        if self.training and self.sample_drop_ratio > 0.1:
            # DINOv2's rule: above 0.1 the subset trick pays off; below, plain DropPath.
            x = drop_add_residual_stochastic_depth(x, self._attn_residual, self.sample_drop_ratio)
            return drop_add_residual_stochastic_depth(x, self._ffn_residual, self.sample_drop_ratio)
        if self.training and self.sample_drop_ratio > 0.0 and stochastic_depth_kept_rows(x):
            x = drop_add_residual_kept_rows(x, self._attn_residual, self.sample_drop_ratio)
            return drop_add_residual_kept_rows(x, self._ffn_residual, self.sample_drop_ratio)
        x = x + self.drop_path1(self._attn_residual(x))
        return x + self.drop_path2(self._ffn_residual(x))

    def forward_rows(self, x: Tensor, rows: Tensor) -> Tensor:
        """The block's output for the tokens at ``rows`` (flat indices into B*T) only, (M, D).

        Why: in the last block the losses read a few tokens (CLS, masked patches), and every
        other token's output projection and MLP would be computed and thrown away. Keys and
        values still come from all tokens, so the rows equal those of :meth:`forward`
        (stochastic depth draws its samples the same way, in the same order).
        """
        b, n, c = x.shape
        sample = rows // n
        x_rows = x.reshape(b * n, c).index_select(0, rows)
        scale = self._sample_scale(b, x)
        x_rows = x_rows + _per_row(self.ls1(self.attn(self.norm1(x), rows)), scale, sample)
        scale = self._sample_scale(b, x)
        return x_rows + _per_row(self.ls2(self.mlp(self.norm2(x_rows))), scale, sample)

    def _sample_scale(self, b: int, x: Tensor) -> Tensor | None:
        """Per-sample residual factor of this block's stochastic depth (None: keep all), drawn
        as :func:`drop_add_residual_stochastic_depth` (above 0.1) or :class:`DropPath` draws it."""
        p = self.sample_drop_ratio
        if not self.training or p == 0.0:
            return None
        if p > 0.1:
            idx = kept_samples(b, p, x.device)
            return x.new_zeros(b).index_fill_(0, idx, b / idx.numel())
        return x.new_empty(b).bernoulli_(1.0 - p, generator=_generator()) / (1.0 - p)


def _per_row(residual: Tensor, scale: Tensor | None, sample: Tensor) -> Tensor:
    return residual if scale is None else residual * scale.index_select(0, sample).unsqueeze(-1).to(residual.dtype)
