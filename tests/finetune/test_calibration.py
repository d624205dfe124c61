"""Temperature + bias calibration: known answers, bounded, never worse than none."""

import numpy as np
import torch

from mammodino.finetune.calibration import expected_calibration_error, fit_calibration


def _sample(n=4000, c=2, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g) * scale
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    return z, y


def test_recovers_temperature_and_prior_shift():
    z, y = _sample(c=3)
    shifted = z * 2.0 + torch.tensor([1.0, -0.5, 0.0])
    T, b, info = fit_calibration(shifted, y)
    assert abs(float(T) - 2.0) < 0.15
    want = -torch.tensor([1.0, -0.5, 0.0]) / 2.0
    assert torch.allclose(b, want - want.mean(), atol=0.1)
    assert info["val_nll_after"] < info["val_nll_before"]


def test_binary_ranking_is_unchanged_and_ece_drops():
    z, y = _sample(c=2, seed=1)
    over = z * 3.0
    T, b, _ = fit_calibration(over, y)
    d_raw = (over[:, 1] - over[:, 0]).double()
    d_cal = ((over / T + b)[:, 1] - (over / T + b)[:, 0]).double()
    assert torch.equal(torch.argsort(d_raw, stable=True), torch.argsort(d_cal, stable=True))
    p_raw = torch.softmax(over.double(), 1)[:, 1].numpy()
    p_cal = torch.softmax((over / T + b).double(), 1)[:, 1].numpy()
    probs_raw = np.stack([1 - p_raw, p_raw], 1)
    probs_cal = np.stack([1 - p_cal, p_cal], 1)
    assert expected_calibration_error(y.numpy(), probs_cal) < expected_calibration_error(y.numpy(), probs_raw) / 2


def test_temperature_is_bounded_on_a_hopeless_validation_split():
    z = torch.tensor([[3.0, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    y = torch.tensor([1, 0, 0, 1, 1])  # anti-correlated: the NLL optimum is a flat score
    T, _b, _ = fit_calibration(z, y)
    assert float(T) <= 20.0 + 1e-4


def test_multilabel_per_output():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3000, 2, generator=g) * 2
    y = torch.bernoulli(torch.sigmoid(z), generator=g).long()
    y[:500, 1] = -1
    T, b, _ = fit_calibration(z * torch.tensor([0.5, 2.0]) + 1.0, y, multilabel=True)
    assert torch.allclose(T, torch.tensor([0.5, 2.0]), rtol=0.12)
    assert torch.allclose(b, torch.tensor([-2.0, -0.5]), atol=0.25)


def test_ece_known_answer():
    y = np.array([1, 1, 0, 0])
    probs = np.array([[0.1, 0.9], [0.1, 0.9], [0.9, 0.1], [0.9, 0.1]])
    assert abs(expected_calibration_error(y, probs) - 0.1) < 1e-9
