"""Classification heads on top of the ViT tokens.

* :class:`LinearHead` — one linear layer on ``[CLS, mean patch token]``: the feature the
  linear probe uses (``embed``), so a frozen-backbone fine-tune is a probe trained by SGD.
* :class:`AttentionPoolHead` — gated attention pooling over the patch tokens (Ilse et al.,
  "Attention-based deep multiple instance learning", 2018): a lesion covers a few dozen of
  the thousands of patches of a mammogram, and a mean over all patches dilutes it; attention
  weights let a handful of patches decide. The pooled feature is concatenated with CLS.
  Padding patches (the zero border that makes the input square) are excluded through
  ``token_mask``.

Both return logits (B, n_outputs): softmax over classes for single-label tasks, one sigmoid
per output for multi-label tasks (the loss decides, the head does not).

Example:
    >>> head = AttentionPoolHead(192, 2)
    >>> tokens = {"cls": torch.randn(4, 192), "patches": torch.randn(4, 36, 192)}
    >>> head(tokens).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

HEADS = ("linear", "attention")


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def masked_mean(patches: Tensor, token_mask: Tensor | None) -> Tensor:
    """Mean over the patch tokens that ``token_mask`` (B, N) marks as image (all when None)."""
    if token_mask is None:
        return patches.mean(dim=1)
    w = token_mask.to(patches.dtype).unsqueeze(-1)
    return (patches * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


class LinearHead(nn.Module):
    """``[CLS, mean patch] -> logits``; the mean skips padding patches when a mask is given."""

    kind = "linear"

    def __init__(self, embed_dim: int, n_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(2 * embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * embed_dim, n_outputs)
        _init(self)

    def forward(self, tokens: dict, token_mask: Tensor | None = None) -> Tensor:
        feat = torch.cat([tokens["cls"], masked_mean(tokens["patches"], token_mask)], dim=1)
        return self.fc(self.dropout(self.norm(feat)))


class AttentionPoolHead(nn.Module):
    """Gated attention pooling: ``a_i = softmax_i(w . (tanh(V h_i) * sigmoid(U h_i)))``,
    ``pooled = sum_i a_i h_i``, logits from ``[CLS, pooled]``.

    ``last_attention`` keeps the weights of the latest forward pass (B, N) for inspection.
    """

    kind = "attention"

    def __init__(self, embed_dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        self.token_norm = nn.LayerNorm(embed_dim)
        self.V = nn.Linear(embed_dim, hidden)
        self.U = nn.Linear(embed_dim, hidden)
        self.w = nn.Linear(hidden, 1)
        self.norm = nn.LayerNorm(2 * embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * embed_dim, n_outputs)
        _init(self)
        self.last_attention: Tensor | None = None

    def attention(self, patches: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """(B, N) weights summing to 1 over the image patches (0 on padding)."""
        h = self.token_norm(patches)
        scores = self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))).squeeze(-1)
        if token_mask is not None:
            scores = scores.masked_fill(~token_mask.bool(), float("-inf"))
        return torch.softmax(scores.float(), dim=1).to(patches.dtype)

    def forward(self, tokens: dict, token_mask: Tensor | None = None) -> Tensor:
        a = self.attention(tokens["patches"], token_mask)
        self.last_attention = a.detach()
        pooled = torch.einsum("bn,bnd->bd", a, tokens["patches"])
        feat = torch.cat([tokens["cls"], pooled], dim=1)
        return self.fc(self.dropout(self.norm(feat)))


def build_head(kind: str, embed_dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.0) -> nn.Module:
    if kind == "linear":
        return LinearHead(embed_dim, n_outputs, dropout)
    if kind == "attention":
        return AttentionPoolHead(embed_dim, n_outputs, hidden, dropout)
    raise ValueError(f"unknown head {kind!r} (choose from {', '.join(HEADS)})")
