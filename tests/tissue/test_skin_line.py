"""The two masks of a segmentation on generated breasts with a known skin ramp: the extent
(box, QC) reaches the ramp's foot, the tissue mask stops at SKIN_STEP x the threshold's
step above the air, and a cut that would take a fatty breast's fat is not made."""

import numpy as np

from mammodino.tissue import segmentation as S


def _ramped_breast(h=512, w=320, ramp=40, seed=0):
    """Half-ellipse breast at 0.6 on air at 0.05 whose last ``ramp`` px fall linearly to the
    air (a compressed breast thinning out to its skin); returns (image, distance inside)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rho = np.sqrt(((yy - h / 2) / (0.45 * h)) ** 2 + (xx / (0.8 * w)) ** 2)
    inside = (1.0 - rho) * 0.8 * w  # ~ px from the outline along x
    level = np.clip(inside / ramp, 0.0, 1.0)
    img = 0.05 + 0.55 * level
    img += np.random.default_rng(seed).normal(0, 0.003, img.shape)
    return np.clip(img, 0, 1).astype(np.float32), inside


def test_the_tissue_mask_stops_up_the_ramp_and_the_box_reaches_its_foot():
    img, inside = _ramped_breast()
    seg = S.segment(img)
    assert seg.extent is not None
    extent = seg.full_mask(whole_breast=True).astype(bool)
    tissue = seg.full_mask().astype(bool)
    assert not (tissue & ~extent).any()
    # the extent's outline lies near the ramp's foot, the tissue mask's further up the ramp
    edge_extent = np.median(inside[extent & ~np.roll(extent, -1, axis=1)])
    edge_tissue = np.median(inside[tissue & ~np.roll(tissue, -1, axis=1)])
    assert edge_extent < 12 and edge_tissue > edge_extent + 3, (edge_extent, edge_tissue)
    x0, y0, x1, y1 = seg.box()
    cols = np.flatnonzero(extent.any(axis=0))
    assert x1 >= cols[-1] + 1  # the box is the extent's
    assert tissue.sum() >= 0.85 * extent.sum()


def test_a_fatty_breast_keeps_its_fat_in_the_tissue_mask():
    """Fat a little above the breast threshold but below the skin line's level, dense
    patches far brighter: the cut would take most of the breast, so the mask stays whole."""
    h, w = 512, 320
    yy, xx = np.mgrid[0:h, 0:w]
    breast = ((yy - h / 2) / (0.45 * h)) ** 2 + (xx / (0.8 * w)) ** 2 <= 1
    img = np.zeros((h, w), np.float32)
    img[breast] = 0.09
    rng = np.random.default_rng(1)
    for _ in range(6):
        cy, cx = rng.integers(150, 360), rng.integers(20, 150)
        img[((yy - cy) ** 2 + (xx - cx) ** 2 <= 30 ** 2) & breast] = 1.0
    img += rng.normal(0, 0.002, img.shape).astype(np.float32)
    seg = S.segment(np.clip(img, 0, 1))
    tissue = seg.full_mask().astype(bool)
    assert seg.extent is None
    assert (tissue & breast).sum() >= 0.95 * breast.sum()
