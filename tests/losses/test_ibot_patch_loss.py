"""iBOT masked-patch loss: per-image weights 1/n_masked, divided by the number of images."""

import math

import torch
import torch.nn.functional as F

from mammodino.losses import iBOTPatchLoss


def test_per_image_weighting_by_hand():
    loss_fn = iBOTPatchLoss(2, student_temp=1.0)
    masks = torch.tensor([[True, True, False], [False, False, True], [False, False, False]])
    # masked rows in order: image 0 patch 0, image 0 patch 1, image 1 patch 2
    s = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ce = [math.log(2.0), -math.log(0.75), -math.log(0.25)]
    expected = (0.5 * ce[0] + 0.5 * ce[1] + 1.0 * ce[2]) / 3  # 3 images, one unmasked
    assert math.isclose(loss_fn.forward_masked(s, t, masks).item(), expected, rel_tol=1e-6)
    # the explicit weights of DINOv2's collate give the same
    w = torch.tensor([0.5, 0.5, 1.0])
    assert math.isclose(loss_fn.forward_masked(s, t, masks, masks_weight=w).item(), expected, rel_tol=1e-6)
    # padding rows past n_masked_patches are ignored
    s_pad, t_pad = torch.cat([s, torch.randn(2, 2)]), torch.cat([t, torch.rand(2, 2)])
    w_pad = torch.cat([w, torch.ones(2)])
    got = loss_fn.forward_masked(s_pad, t_pad, masks, n_masked_patches=3, masks_weight=w_pad)
    assert math.isclose(got.item(), expected, rel_tol=1e-6)


def test_dense_form_equals_masked_form():
    torch.manual_seed(0)
    loss_fn = iBOTPatchLoss(5)
    b, n, k = 4, 6, 5
    masks = torch.rand(b, n) < 0.4
    masks[2] = False
    s = torch.randn(b, n, k)
    t = torch.softmax(torch.randn(b, n, k), -1)
    dense = loss_fn(s, t, masks)
    masked = loss_fn.forward_masked(s[masks], t[masks], masks)
    assert torch.allclose(dense, masked, atol=1e-6)
    by_hand = 0.0
    for i in range(b):
        if masks[i].any():
            ce = -(t[i][masks[i]] * F.log_softmax(s[i][masks[i]] / 0.1, -1)).sum(-1)
            by_hand += ce.mean()
    assert torch.allclose(dense, torch.as_tensor(by_hand / b), atol=1e-6)


def test_ibot_centering_and_sinkhorn():
    loss_fn = iBOTPatchLoss(3, center_momentum=0.9)
    logits = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    loss_fn.update_center(logits)
    assert loss_fn.center.shape == (1, 1, 3)
    assert torch.allclose(loss_fn.center, torch.tensor([[[0.0, 0.15, 0.15]]]))
    probs = loss_fn.softmax_center_teacher(logits, 0.1)
    assert torch.allclose(probs, torch.softmax((logits - loss_fn.center[0]) / 0.1, -1))
    q = loss_fn.sinkhorn_knopp_teacher(logits, 0.1, n_masked_patches_tensor=torch.tensor([2]))
    assert torch.allclose(q.sum(1), torch.ones(2), atol=1e-5)
