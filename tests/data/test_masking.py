"""iBOT block masks restricted to tissue patches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammodino.data.masking import block_mask, mask_ratio_bins, sample_patch_mask


def left_tissue(grid=16, cols=7):
    t = np.zeros((grid, grid), np.float32)
    t[:, :cols] = 1.0
    t[:, cols] = 0.4  # a partial column: below mask_min_tissue 0.5
    return t


def test_masks_only_on_tissue_patches_within_ratio_bounds():
    rng = np.random.default_rng(0)
    tissue = left_tissue()
    n_tissue = int((tissue >= 0.5).sum())
    assert n_tissue == 112
    for _ in range(300):
        m = sample_patch_mask(tissue, (0.1, 0.5), rng, 0.5)
        assert not (m & (tissue < 0.5)).any()
        assert int(0.1 * n_tissue) <= int(m.sum()) <= int(0.5 * n_tissue)


def test_exact_count_and_blocks():
    rng = np.random.default_rng(1)
    eligible = np.zeros((16, 16), bool)
    eligible[2:14, 1:9] = True
    sizes = []
    for n in (1, 3, 4, 17, 40, 96):
        m = block_mask(eligible, n, rng)
        assert int(m.sum()) == n and not (m & ~eligible).any()
        n_comp, _ = cv2.connectedComponents(m.astype(np.uint8), connectivity=4)
        sizes.append(n / max(n_comp - 1, 1))
    # Rectangular blocks, not scattered patches: components hold several patches on average.
    assert np.mean(sizes[3:]) >= 4
    assert int(block_mask(eligible, 500, rng).sum()) == int(eligible.sum())  # capped by eligible
    assert not block_mask(eligible, 0, rng).any()


def test_random_sampler_masks_anywhere_ratio_of_all_patches():
    rng = np.random.default_rng(2)
    tissue = left_tissue()
    hit_background = False
    for _ in range(100):
        m = sample_patch_mask(tissue, (0.3, 0.4), rng, None)
        assert int(0.3 * 256) <= int(m.sum()) <= int(0.4 * 256)
        hit_background |= bool((m & (tissue < 0.5)).any())
    assert hit_background


def test_unmasked_crop_and_no_tissue():
    rng = np.random.default_rng(3)
    assert not sample_patch_mask(left_tissue(), None, rng, 0.5).any()
    assert not sample_patch_mask(np.zeros((8, 8), np.float32), (0.1, 0.5), rng, 0.5).any()


def test_block_shapes_are_varied_rectangles():
    rng = np.random.default_rng(4)
    eligible = np.ones((14, 14), bool)
    ratios = []
    for _ in range(200):
        m = block_mask(eligible, 12, rng)
        ys, xs = np.nonzero(m)
        ratios.append((np.ptp(ys) + 1) / (np.ptp(xs) + 1))
    assert min(ratios) < 0.7 and max(ratios) > 1.4  # tall and wide blocks both occur


def test_ratio_bins_are_dinov2_linspace():
    bins = mask_ratio_bins((0.1, 0.5), 4)
    assert bins == [pytest.approx((0.1, 0.2)), pytest.approx((0.2, 0.3)), pytest.approx((0.3, 0.4)), pytest.approx((0.4, 0.5))]
    assert mask_ratio_bins((0.1, 0.5), 0) == []


def test_deterministic_given_rng():
    t = left_tissue()
    a = sample_patch_mask(t, (0.1, 0.5), np.random.default_rng(7), 0.5)
    b = sample_patch_mask(t, (0.1, 0.5), np.random.default_rng(7), 0.5)
    assert np.array_equal(a, b)
