"""Calibrated probabilities: temperature and bias fitted on the validation split.

A network fine-tuned on class-balanced batches (or with a weighted loss) sees positives far
more often than a screening population has them, and deep networks are over-confident
anyway (Guo et al. 2017). ``logits / T + b`` with ``T`` and ``b`` minimising the validation
negative log-likelihood fixes both the confidence (``T``) and the prior shift (``b``) while
leaving the ranking of a binary task, hence its AUC, unchanged. Single-label: one ``T``,
one bias per class (binary: Platt scaling on the logit difference). Multi-label: one ``T``
and one bias per output.

Example:
    >>> z = torch.randn(2000, 2) * 3; y = torch.distributions.Categorical(logits=z).sample()
    >>> T, b, _ = fit_calibration(z * 2.0, y)      # over-confident by 2x
    >>> round(float(T), 1)
    2.0
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

LOG_T_MAX = float(np.log(20.0))


def _nll(z: Tensor, y: Tensor, multilabel: bool) -> Tensor:
    if not multilabel:
        return F.cross_entropy(z, y)
    m = y >= 0
    per = F.binary_cross_entropy_with_logits(z, y.clamp_min(0).float(), reduction="none")
    return (per * m).sum() / m.sum().clamp_min(1)


def fit_calibration(logits, y, multilabel: bool = False, max_iter: int = 200) -> tuple[Tensor, Tensor, dict]:
    """(T, b, info) minimising the NLL of ``logits / T + b`` on (``logits``, ``y``)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n_out = z.shape[1]
    u = torch.zeros(n_out if multilabel else 1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_out, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([u, b], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def temperature():  # bounded to [1/20, 20]: a tiny validation split must not flatten every score
        return torch.exp(LOG_T_MAX * torch.tanh(u))

    def closure():
        opt.zero_grad()
        loss = _nll(z / temperature() + b, y, multilabel)
        loss.backward()
        return loss

    with torch.no_grad():
        before = float(_nll(z, y, multilabel))
    opt.step(closure)
    T, bias = temperature().detach(), b.detach()
    if not multilabel:
        bias = bias - bias.mean()  # softmax is shift-invariant: keep b centred
    with torch.no_grad():
        after = float(_nll(z / T + bias, y, multilabel))
    if not np.isfinite(after) or after > before:  # never worse than identity
        T, bias, after = torch.ones_like(T), torch.zeros_like(bias), before
    return T.float(), bias.float(), {"val_nll_before": before, "val_nll_after": after,
                                     "temperature": T.tolist(), "bias": bias.tolist()}


def expected_calibration_error(y, probs, multilabel: bool = False, n_bins: int = 10) -> float:
    """ECE with equal-width bins: binary -> of the positive probability; multi-class -> of the
    top-label confidence; multi-label -> mean over the outputs (labelled rows only)."""
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)

    def ece(conf, correct):
        if len(conf) == 0:
            return float("nan")
        bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
        total = 0.0
        for k in range(n_bins):
            sel = bins == k
            if sel.any():
                total += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
        return float(total)

    if multilabel:
        vals = [ece(probs[y[:, t] >= 0, t], (y[y[:, t] >= 0, t] == 1).astype(float)) for t in range(y.shape[1])]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")
    if probs.shape[1] == 2:
        return ece(probs[:, 1], (y == 1).astype(float))
    return ece(probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float))
