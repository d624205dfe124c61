"""Sinkhorn-Knopp teacher targets: a hand-computed case and the marginals."""

import math

import pytest
import torch

from mammodino.losses import sinkhorn_knopp


def test_one_iteration_by_hand():
    # Q (K x B) = exp(logits).T = [[3, 1], [1, 1]]. /sum 6 -> [[1/2, 1/6], [1/6, 1/6]].
    # rows -> 1/K: [[3/8, 1/8], [1/4, 1/4]]; columns -> 1/B: [[3/10, 1/6], [1/5, 1/3]]; x B.
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    q = sinkhorn_knopp(logits, temperature=1.0, n_iterations=1)
    assert torch.allclose(q, torch.tensor([[0.6, 0.4], [1 / 3, 2 / 3]]), atol=1e-6)


def test_temperature_divides_the_logits():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    q = sinkhorn_knopp(logits * 0.04, temperature=0.04, n_iterations=1)
    assert torch.allclose(q, torch.tensor([[0.6, 0.4], [1 / 3, 2 / 3]]), atol=1e-5)


@pytest.mark.parametrize("n_iterations", [3, 200])
def test_marginals(n_iterations):
    torch.manual_seed(0)
    b, k = 6, 10
    logits = torch.randn(b, k)
    q = sinkhorn_knopp(logits, temperature=0.1, n_iterations=n_iterations)
    assert q.shape == (b, k) and (q >= 0).all()
    assert torch.allclose(q.sum(1), torch.ones(b), atol=1e-5)  # one distribution per sample
    prototype_mass = q.sum(0)  # -> B / K each as the iterations converge
    if n_iterations == 200:
        assert torch.allclose(prototype_mass, torch.full((k,), b / k), atol=1e-4)
    else:  # three iterations already balance far better than a plain softmax
        plain = torch.softmax(logits / 0.1, -1).sum(0)
        assert (prototype_mass - b / k).abs().max() < 0.5 * (plain - b / k).abs().max()


def test_equal_logits_give_uniform_targets_and_extreme_ones_stay_finite():
    assert torch.allclose(sinkhorn_knopp(torch.zeros(4, 5), 0.04), torch.full((4, 5), 0.2))
    # exp(2500) overflows without the max subtraction (DINOv2 would return NaN here); the
    # second sample underflows to 0 against the first, but nothing becomes NaN or inf.
    q = sinkhorn_knopp(torch.tensor([[100.0, -100.0, 0.0], [0.0, 0.0, 0.0]]), temperature=0.04)
    assert torch.isfinite(q).all()
    assert torch.allclose(q[0], torch.tensor([1.0, 0.0, 0.0]))
    q = sinkhorn_knopp(torch.tensor([[30.0, -30.0, 0.0], [0.0, 0.0, 0.0]]), temperature=1.0)
    assert torch.allclose(q.sum(1), torch.ones(2), atol=1e-5)


def test_explicit_sample_count():
    # n_samples = B reproduces the default; DINOv2's iBOT passes its masked-patch count.
    logits = torch.randn(5, 7)
    assert torch.allclose(sinkhorn_knopp(logits, 0.1, n_samples=5), sinkhorn_knopp(logits, 0.1))
