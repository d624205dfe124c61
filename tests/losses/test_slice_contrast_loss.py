"""DBT adjacent-slice InfoNCE: known values, DBT-only rows, symmetry, no teacher gradient."""

import math

import pytest
import torch

from mammodino.losses import SliceContrastLoss


def test_orthogonal_embeddings():
    n = 4
    z = torch.eye(n, 8)
    loss = SliceContrastLoss(0.1)(z, z, torch.ones(n, dtype=torch.bool))
    # positive logit 1/0.1 = 10, the n-1 negatives 0
    assert math.isclose(loss.item(), math.log(1 + (n - 1) * math.exp(-10.0)), abs_tol=2e-6)


def test_identical_embeddings_give_log_n():
    z = torch.ones(5, 3)
    loss = SliceContrastLoss(0.1)(z, z * 2, torch.ones(5, dtype=torch.bool))
    assert math.isclose(loss.item(), math.log(5.0), rel_tol=1e-6)


def test_only_dbt_rows_count():
    torch.manual_seed(0)
    n = 3
    z = torch.eye(n, 8)
    s = torch.cat([z, torch.randn(4, 8)])
    t = torch.cat([z, torch.randn(4, 8)])
    is_dbt = torch.tensor([True] * n + [False] * 4)
    loss = SliceContrastLoss(0.1)(s, t, is_dbt)
    assert math.isclose(loss.item(), math.log(1 + (n - 1) * math.exp(-10.0)), abs_tol=2e-6)
    # and the order of rows does not matter
    perm = torch.randperm(7)
    assert torch.allclose(SliceContrastLoss(0.1)(s[perm], t[perm], is_dbt[perm]), loss)


def test_by_hand_cross_entropy_and_temperature():
    torch.manual_seed(0)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    sn, tn = torch.nn.functional.normalize(s, dim=-1), torch.nn.functional.normalize(t, dim=-1)
    logits = sn @ tn.t() / 0.2
    ref = -torch.log_softmax(logits, 1).diagonal().mean()
    assert torch.allclose(SliceContrastLoss(0.2)(s, t, torch.ones(4, dtype=torch.bool)), ref, atol=1e-6)


def test_symmetric_form_pairs_crop1_with_crop2():
    torch.manual_seed(0)
    b = 3
    s, t = torch.randn(2 * b, 6), torch.randn(2 * b, 6)
    is_dbt = torch.tensor([True, True, False])
    fn = SliceContrastLoss(0.1)
    both = fn(s, t, is_dbt)
    one = 0.5 * (fn(s[:b], t[b:], is_dbt) + fn(s[b:], t[:b], is_dbt))
    assert torch.allclose(both, one)
    with pytest.raises(ValueError, match="rows"):
        fn(s[:5], t[:5], is_dbt)


def test_fewer_than_two_dbt_samples_give_zero_with_graph_and_teacher_gets_no_gradient():
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    fn = SliceContrastLoss(0.1)
    for is_dbt in (torch.zeros(4, dtype=torch.bool), torch.tensor([False, True, False, False])):
        loss = fn(s, t, is_dbt)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.equal(s.grad, torch.zeros_like(s))
    s.grad = None
    fn(s, t, torch.tensor([True, True, False, True])).backward()
    assert s.grad[2].abs().sum() == 0 and s.grad[0].abs().sum() > 0
    assert t.grad is None
