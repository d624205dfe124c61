"""Tissue-aware and random crop boxes on constructed masks."""

from __future__ import annotations

import numpy as np
import pytest

from mammodino.config import load_config
from mammodino.data.crops import (
    Box,
    CropSampler,
    TissueMap,
    crop_resize,
    sample_random_box,
    sample_tissue_box,
)


def left_half_mask(h=200, w=160):
    m = np.zeros((h, w), np.uint8)
    m[:, : w // 2] = 1
    return m


def inside(box: Box, shape) -> bool:
    h, w = shape
    return 0 <= box.x0 < box.x1 <= w and 0 <= box.y0 < box.y1 <= h


@pytest.fixture(scope="module")
def crops_cfg():
    return load_config(None).crops


def test_tissue_map_counts_and_box():
    m = np.zeros((50, 40), np.uint8)
    m[10:30, 5:25] = 1
    m[12, 5] = 0
    t = TissueMap(m)
    assert t.breast_box == Box(5, 10, 25, 30)
    assert t.total == 399
    assert t.count(Box(0, 0, 40, 50)) == 399
    assert t.count(Box(5, 10, 15, 20)) == 99
    assert t.fraction(Box(30, 30, 40, 40)) == 0.0
    assert TissueMap(np.zeros((8, 8), np.uint8)).breast_box == Box(0, 0, 8, 8)


def test_random_tissue_pixel_is_tissue_and_covers_it():
    rng = np.random.default_rng(0)
    m = np.zeros((30, 30), np.uint8)
    m[3, 4] = m[20, 7] = m[29, 29] = 1
    t = TissueMap(m)
    seen = {t.random_tissue_pixel(rng) for _ in range(200)}
    assert seen == {(4, 3), (7, 20), (29, 29)}


def test_tissue_global_crops_sit_on_tissue_random_ones_often_not(crops_cfg):
    mask = left_half_mask()
    t = TissueMap(mask)
    tissue = CropSampler.from_config(crops_cfg)
    random = CropSampler.from_config(load_config(None, ["crops.sampler=random"]).crops)
    rng = np.random.default_rng(1)
    fracs = []
    for _ in range(200):
        box, frac = tissue.global_box(t, rng)
        assert inside(box, mask.shape)
        assert frac == pytest.approx(mask[box.y0 : box.y1, box.x0 : box.x1].mean())
        fracs.append(frac)
    assert min(fracs) >= crops_cfg.global_min_tissue
    random_fracs = [random.global_box(t, rng)[1] for _ in range(200)]
    assert np.mean(np.array(random_fracs) < 0.5) > 0.25
    local_fracs = [tissue.local_box(t, rng)[1] for _ in range(200)]
    assert min(local_fracs) >= crops_cfg.local_min_tissue


def test_tissue_crop_area_is_a_fraction_of_the_breast_box(crops_cfg):
    mask = np.zeros((400, 400), np.uint8)
    mask[100:300, 50:250] = 1  # breast box 200 x 200, far from the image edges
    t = TissueMap(mask)
    rng = np.random.default_rng(2)
    lo, hi = crops_cfg.local_crops_scale
    ratios = []
    for _ in range(300):
        box, _, _ = sample_tissue_box(t, rng, (lo, hi), tuple(crops_cfg.aspect_ratio), 0.0, 10)
        ratios.append(box.area / (200 * 200))
        assert 0.74 <= box.width / box.height <= 1.35
    assert lo * 0.95 <= min(ratios) and max(ratios) <= hi * 1.05
    assert np.mean(ratios) == pytest.approx((lo + hi) / 2, rel=0.1)


def test_fallback_to_breast_box_when_tissue_is_tiny(crops_cfg):
    mask = np.zeros((300, 300), np.uint8)
    for y, x in ((50, 60), (50, 240), (250, 60), (250, 240), (150, 150)):
        mask[y, x] = 1  # five scattered pixels: no crop can be 50 % tissue
    t = TissueMap(mask)
    rng = np.random.default_rng(3)
    box, frac, accepted = sample_tissue_box(t, rng, (0.32, 1.0), (0.75, 4 / 3), 0.5, 10)
    assert not accepted and box == Box(60, 50, 241, 251) == t.breast_box
    sampler = CropSampler.from_config(crops_cfg)
    assert all(sampler.global_box(t, rng)[0] == t.breast_box for _ in range(20))
    # Locals fall back to their most tissue-rich try, not to the whole breast box.
    local, _ = sampler.local_box(t, rng)
    assert local.area < t.breast_box.area
    assert t.count(local) >= 1


def test_random_box_is_torchvision_random_resized_crop():
    rng = np.random.default_rng(4)
    areas = []
    for _ in range(300):
        box = sample_random_box((200, 160), rng, (0.32, 1.0), (0.75, 4 / 3))
        assert inside(box, (200, 160))
        areas.append(box.area / (200 * 160))
    assert 0.3 <= min(areas) and max(areas) <= 1.0
    # Impossible scale -> central crop with the ratio clamped (torchvision's fallback).
    box = sample_random_box((100, 400), rng, (2.0, 3.0), (0.75, 4 / 3))
    assert box == Box(133, 0, 133 + 133, 100)


def _resized_mask(mask: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The slow reference: the mask cropped and resized like the image (float per pixel)."""
    import cv2

    region = mask[box.y0 : box.y1, box.x0 : box.x1].astype(np.float32)
    interp = cv2.INTER_AREA if box.area >= size * size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


def test_patch_fractions_match_the_resized_mask():
    rng = np.random.default_rng(5)
    mask = (rng.random((300, 260)) < 0.5).astype(np.uint8)
    mask[:, :100] = 1
    t = TissueMap(mask)
    for box, size, patch in ((Box(10, 20, 234, 244), 112, 14), (Box(0, 0, 260, 300), 64, 16), (Box(50, 60, 90, 100), 64, 8)):
        grid = size // patch
        fast = t.patch_fractions(box, grid)
        resized = _resized_mask(mask, box, size).reshape(grid, patch, grid, patch).mean(axis=(1, 3))
        assert fast.shape == (grid, grid)
        assert np.abs(fast - resized).max() < 0.08
        assert fast.mean() == pytest.approx(mask[box.y0 : box.y1, box.x0 : box.x1].mean(), abs=0.02)
    # Exact on an aligned box: 4 x 4 patches of 10 pixels each.
    m = np.zeros((40, 40), np.uint8)
    m[:, :20] = 1
    m[:5, :] = 1
    f = TissueMap(m).patch_fractions(Box(0, 0, 40, 40), 4)
    assert f.tolist() == [[1, 1, 0.5, 0.5], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]


def test_crop_resize_uint16_to_unit_float():
    img = np.full((100, 80), 65535, np.uint16)
    img[:, 40:] = 0
    out = crop_resize(img, Box(0, 0, 80, 100), 20)
    assert out.dtype == np.float32 and out.shape == (20, 20)
    assert out[:, :9].min() == pytest.approx(1.0) and out[:, 11:].max() == pytest.approx(0.0)
    up = crop_resize(img, Box(30, 0, 50, 10), 40)  # enlarged (INTER_LINEAR)
    assert up.shape == (40, 40) and 0.0 <= up.min() and up.max() <= 1.0
