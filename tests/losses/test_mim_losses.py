"""Known answers for the MAE and SimMIM reconstruction losses (tiny hand-computed cases)."""

import math

import pytest
import torch

from mammodino.losses.mae_loss import mae_loss, patchify
from mammodino.losses.simmim_loss import simmim_loss


def test_patchify_layout_rows_then_columns():
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    p = patchify(img, 2)
    assert p.shape == (1, 4, 4)
    assert p[0, 0].tolist() == [0, 1, 4, 5]      # top-left patch, row-major pixels
    assert p[0, 1].tolist() == [2, 3, 6, 7]      # top-right
    assert p[0, 2].tolist() == [8, 9, 12, 13]    # bottom-left
    with pytest.raises(ValueError, match="multiple of the patch size"):
        patchify(torch.zeros(1, 1, 3, 4), 2)


def test_mae_loss_norm_pix_known_answer():
    # one 2x4 image, patch 2: patch A = [0, 1, 2, 3] (visible), patch B = [4, 6, 8, 10] (masked)
    img = torch.tensor([[[[0.0, 1.0, 4.0, 6.0], [2.0, 3.0, 8.0, 10.0]]]])
    pred = torch.zeros(1, 2, 4)
    pred[0, 0] = 100.0                           # visible patch: must not count
    mask = torch.tensor([[0, 1]])
    # B: mean 7, unbiased var = (9 + 1 + 1 + 9) / 3 = 20/3; normalised targets t_i = (b_i - 7)/sqrt(20/3 + 1e-6)
    # MSE against 0 = mean(t_i^2) = (20 / (20/3 + 1e-6)) / 4
    expected = (20.0 / (20.0 / 3.0 + 1e-6)) / 4.0
    assert mae_loss(pred, img, mask, 2, norm_pix=True).item() == pytest.approx(expected, rel=1e-6)
    # raw pixels: mean of (4^2, 6^2, 8^2, 10^2) = 54
    assert mae_loss(pred, img, mask, 2, norm_pix=False).item() == pytest.approx(54.0)


def test_mae_loss_averages_over_masked_patches_of_the_batch():
    img = torch.zeros(2, 1, 2, 2)
    pred = torch.tensor([[[1.0, 1, 1, 1]], [[3.0, 3, 3, 3]]])    # per-patch MSE 1 and 9
    mask = torch.tensor([[1], [1]])
    assert mae_loss(pred, img, mask, 2, norm_pix=False).item() == pytest.approx(5.0)
    assert mae_loss(pred, img, torch.tensor([[0], [1]]), 2, norm_pix=False).item() == pytest.approx(9.0)


def test_simmim_loss_l1_on_masked_pixels_known_answer():
    img = torch.tensor([[[[0.0, 1.0, 4.0, 6.0], [2.0, 3.0, 8.0, 10.0]]]])
    pred = patchify(img, 2).clone()
    pred[0, 1] += torch.tensor([1.0, -2.0, 3.0, 0.0])   # masked patch off by |1|+|2|+|3|+0 = 6 over 4 px
    pred[0, 0] += 50.0                                   # unmasked: ignored
    loss = simmim_loss(pred, img, torch.tensor([[0, 1]]), 2, in_chans=1)
    assert loss.item() == pytest.approx(6.0 / (4 + 1e-5))
    # two channels: the sum runs over both, then / C (SimMIM's "/ self.in_chans")
    img2 = torch.zeros(1, 2, 2, 2)
    pred2 = torch.full((1, 1, 8), 0.5)
    assert simmim_loss(pred2, img2, torch.tensor([[1]]), 2, in_chans=2).item() == pytest.approx(
        8 * 0.5 / (4 + 1e-5) / 2)


def test_losses_have_gradients_only_through_masked_patches():
    img = torch.randn(1, 1, 4, 4)
    for fn in (lambda p, m: mae_loss(p, img, m, 2), lambda p, m: simmim_loss(p, img, m, 2)):
        pred = torch.randn(1, 4, 4, requires_grad=True)
        fn(pred, torch.tensor([[1, 0, 0, 1]])).backward()
        g = pred.grad.abs().sum(-1)[0]
        assert g[0] > 0 and g[3] > 0 and g[1] == 0 and g[2] == 0
        assert math.isfinite(float(g.sum()))


def test_losses_are_fp32_for_bf16_predictions():
    """Under CPU/GPU bf16 autocast the decoder output is bf16; the loss must still be computed in fp32."""
    img = torch.tensor([[[[0.0, 1.0, 4.0, 6.0], [2.0, 3.0, 8.0, 10.0]]]])
    pred = torch.zeros(1, 2, 4, dtype=torch.bfloat16)
    mask = torch.tensor([[0, 1]])
    loss = mae_loss(pred, img, mask, 2, norm_pix=True)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx((20.0 / (20.0 / 3.0 + 1e-6)) / 4.0, rel=1e-6)
    assert simmim_loss(pred, img, mask, 2).dtype == torch.float32
