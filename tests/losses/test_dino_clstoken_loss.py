"""DINO CLS loss: cross-entropy by hand, centering, multi-crop normalisation."""

import math

import torch
import torch.nn.functional as F

from mammodino.losses import DINOLoss


def test_cross_entropy_on_a_2x3_example_by_hand():
    # student_temp 0.1 and logits 0.1 * (0, 0, 0) / 0.1 * (0, ln 2, 0): log-softmax of
    # (0,0,0) is -ln 3 each; of (0, ln 2, 0) is (ln 1/4, ln 1/2, ln 1/4).
    s = 0.1 * torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]])
    t = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    loss = DINOLoss(3, student_temp=0.1)([s], [t])
    ce_row1 = math.log(3.0)
    ce_row2 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.5))  # = 1.5 ln 2
    assert math.isclose(loss.item(), (ce_row1 + ce_row2) / 2, rel_tol=1e-6)


def test_sum_over_all_student_teacher_pairs():
    torch.manual_seed(0)
    loss_fn = DINOLoss(5)
    s = [torch.randn(3, 5) for _ in range(2)]
    t = [torch.softmax(torch.randn(3, 5), -1) for _ in range(3)]
    by_hand = sum(-(tj * F.log_softmax(si / 0.1, -1)).sum(-1).mean() for si in s for tj in t)
    assert torch.allclose(loss_fn(s, t), by_hand)


def test_softmax_centering_and_center_ema():
    loss_fn = DINOLoss(3, center_momentum=0.9)
    logits = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    assert torch.allclose(loss_fn.softmax_center_teacher(logits, 0.04),
                          torch.softmax(logits / 0.04, -1))  # centre starts at 0
    loss_fn.update_center(logits)  # batch mean (2, 2, 2)
    assert torch.allclose(loss_fn.center, torch.tensor([[0.2, 0.2, 0.2]]))
    loss_fn.update_center(torch.tensor([[4.0, 0.0, 0.0]]))
    assert torch.allclose(loss_fn.center, torch.tensor([[0.9 * 0.2 + 0.4, 0.18, 0.18]]))
    with torch.no_grad():
        loss_fn.center.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.allclose(loss_fn.softmax_center_teacher(torch.tensor([[1.0, 2.0, 3.0]]), 0.07),
                          torch.full((1, 3), 1 / 3))
    assert "center" in dict(loss_fn.named_buffers())  # checkpointed with the module


def test_multicrop_normalisation_is_dinov2s():
    torch.manual_seed(0)
    b, k, n_local = 3, 6, 4
    loss_fn = DINOLoss(k)
    sg = torch.randn(2 * b, k)
    sl = torch.randn(n_local * b, k)
    tg = torch.softmax(torch.randn(2 * b, k), -1)
    got = loss_fn.forward_multicrop(sg, sl, tg)

    def ce(s, t):
        return -(t * F.log_softmax(s / 0.1, -1)).sum(-1).mean()

    s1, s2 = sg.chunk(2)
    t1, t2 = tg.chunk(2)
    terms = [ce(s1, t2), ce(s2, t1)] + [ce(l, t) for l in sl.chunk(n_local) for t in (t1, t2)]
    assert len(terms) == 2 + 2 * n_local
    assert torch.allclose(got, sum(terms) / len(terms))
    # DINOv2's own arithmetic: global pair as one batch of 2B against swapped teacher, x 2.
    swapped = torch.cat([t2, t1])
    dinov2 = (loss_fn([sg], [swapped]) * 2 + loss_fn(list(sl.chunk(n_local)), [t1, t2])) / (2 + 2 * n_local)
    assert torch.allclose(got, dinov2)
    # no local crops: the two global terms only
    assert torch.allclose(loss_fn.forward_multicrop(sg, None, tg), (terms[0] + terms[1]) / 2)
