"""Projection heads: the DINO/iBOT prototype head and the DBT slice projector.

``DINOHead`` is DINOv2's head: MLP -> L2-normalise -> weight-normalised linear layer onto the
prototypes. DINOv2 builds the last layer with ``weight_norm`` and fills ``weight_g`` with 1;
here the magnitude is fixed at 1 by construction (:class:`NormalizedLinear` divides each
prototype row by its norm in the forward pass). Same function, same gradients as
weight_norm with g frozen at 1, and the state dict is one plain tensor
(``last_layer.weight``), so it goes through ``state_dict`` / safetensors / FSDP unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammodino.models.layers import Linear, linear


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_mlp(nlayers: int, in_dim: int, out_dim: int, hidden_dim: int, bias: bool = True) -> nn.Module:
    """``nlayers`` linear layers with GELU between them (no activation after the last)."""
    if nlayers == 1:
        return Linear(in_dim, out_dim, bias=bias)
    layers: list[nn.Module] = [Linear(in_dim, hidden_dim, bias=bias), nn.GELU()]
    for _ in range(nlayers - 2):
        layers += [Linear(hidden_dim, hidden_dim, bias=bias), nn.GELU()]
    layers.append(Linear(hidden_dim, out_dim, bias=bias))
    return nn.Sequential(*layers)


class NormalizedLinear(nn.Module):
    """``x @ (W / ||W||_row)^T`` without bias: weight norm with the magnitude fixed at 1."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.in_features, self.out_features = in_dim, out_dim
        self.weight = nn.Parameter(nn.Linear(in_dim, out_dim, bias=False).weight.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, F.normalize(self.weight, dim=1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class DINOHead(nn.Module):
    """CLS (or patch) features -> prototype logits (B, out_dim).

    Example:
        >>> head = DINOHead(384, 4096)      # hidden 2048, bottleneck 256, 3 layers
        >>> head(torch.randn(8, 384)).shape
        torch.Size([8, 4096])
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 nlayers: int = 3, mlp_bias: bool = True):
        super().__init__()
        self.mlp = build_mlp(max(nlayers, 1), in_dim, bottleneck_dim, hidden_dim, bias=mlp_bias)
        self.mlp.apply(_init_linear)
        self.last_layer = NormalizedLinear(bottleneck_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mlp(x)
        eps = 1e-6 if x.dtype == torch.float16 else 1e-12
        x = F.normalize(x, dim=-1, p=2, eps=eps)
        return self.last_layer(x)


class SliceProjector(nn.Module):
    """CLS features -> L2-normalised embedding for the DBT adjacent-slice InfoNCE.

    ``proj`` (Linear-GELU-Linear) is shared by student and teacher; the student alone has a
    ``predictor`` (Linear-GELU-Linear, BYOL/SimSiam style) on top, which breaks the symmetry
    between the two branches. The teacher can be built with ``predictor=False`` (its
    parameter names are then a subset of the student's, so an EMA by name works) or be a
    copy of the student called with ``predict=False``.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 1024, out_dim: int = 256, predictor: bool = False):
        super().__init__()
        self.proj = build_mlp(2, in_dim, out_dim, hidden_dim)
        self.predictor = build_mlp(2, out_dim, out_dim, hidden_dim) if predictor else None
        self.apply(_init_linear)

    def forward(self, x: Tensor, predict: bool | None = None) -> Tensor:
        z = self.proj(x)
        if self.predictor is not None and predict is not False:
            z = self.predictor(z)
        elif predict and self.predictor is None:
            raise ValueError("this SliceProjector was built without a predictor")
        return F.normalize(z, dim=-1)
