"""KoLeo on points at known nearest-neighbour distances."""

import math

import torch

from mammodino.losses import KoLeoLoss


def unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def test_square_on_the_circle():
    x = torch.tensor([unit(a) for a in (0, 90, 180, 270)])
    assert math.isclose(KoLeoLoss()(x).item(), -math.log(math.sqrt(2.0)), abs_tol=1e-6)


def test_three_points_and_the_normalisation():
    # angles 0, 60, 180: nearest-neighbour chords 1, 1, sqrt(3) -> loss = -(ln sqrt 3)/3.
    x = torch.tensor([unit(0), unit(60), unit(180)]) * torch.tensor([[5.0], [0.3], [2.0]])  # norms do not matter
    assert math.isclose(KoLeoLoss()(x).item(), -math.log(3.0) / 6, abs_tol=1e-6)


def test_dinov2_eps_definition_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(6, 4, requires_grad=True)
    loss = KoLeoLoss()(x)
    xn = torch.nn.functional.normalize(x, eps=1e-8, dim=-1)
    d = torch.cdist(xn, xn) + torch.eye(6) * 10
    ref = -torch.log(d.min(1).values + 1e-8).mean()
    assert torch.allclose(loss, ref, atol=1e-5)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_single_point_is_zero_with_graph():
    x = torch.randn(1, 4, requires_grad=True)
    loss = KoLeoLoss()(x)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros(1, 4))
