r"""KoLeo regulariser (Kozachenko-Leonenko entropy estimator), as in DINOv2.

For a batch x_1..x_n, L2-normalised (``F.normalize``, eps 1e-8)::

    loss = -(1/n) * sum_i log(d_i + eps),   d_i = || x_i - x_nn(i) + eps ||_2,   eps = 1e-8

where nn(i) is the nearest other point (largest dot product) and the inner ``+ eps`` is
``nn.PairwiseDistance``'s, which DINOv2 uses. Maximising nearest-neighbour distances
spreads the CLS features over the sphere. DINOv2 applies it to the student CLS tokens of
each global crop separately (two calls per batch, summed), never across ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KoLeoLoss(nn.Module):
    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.pdist = nn.PairwiseDistance(p=2, eps=eps)

    @staticmethod
    def pairwise_nn(x: Tensor) -> Tensor:
        """Index of each row's nearest other row (rows L2-normalised)."""
        dots = x @ x.t()
        dots.fill_diagonal_(-1.0)
        return dots.argmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] < 2:  # no neighbour: nothing to spread, keep the graph
            return x.sum() * 0.0
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = F.normalize(x.float(), p=2, dim=-1, eps=self.eps)
            with torch.no_grad():
                idx = self.pairwise_nn(x)
            d = self.pdist(x, x[idx])
            return -torch.log(d + self.eps).mean()
