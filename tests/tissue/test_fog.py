"""Film fog trend: a plane fitted to the air (known answer), and the fog corner it keeps out
of the breast mask."""

import numpy as np

from mammodino.tissue.fog import fog_trend
from mammodino.tissue.segmentation import segment


def test_fog_trend_recovers_a_plane_despite_bright_specks():
    rng = np.random.default_rng(0)
    h, w = 200, 120
    yy, xx = np.mgrid[0:h, 0:w]
    truth = 0.01 * xx / w - 0.02 * yy / h
    img = (0.05 + truth + rng.normal(0, 0.001, (h, w))).astype(np.float32)
    img[50:60, 30:40] = 0.9  # a label: an outlier the refits drop
    air = np.ones((h, w), bool)
    trend, span = fog_trend(img, air)
    expected = truth - np.median(truth)
    assert np.abs(trend - expected).max() < 0.002
    assert abs(span - 0.98 * (0.01 + 0.02)) < 0.005  # 1st-99th percentile of the plane


def test_fog_trend_needs_air():
    img = np.zeros((64, 64), np.float32)
    air = np.zeros((64, 64), bool)
    air[:4, :4] = True
    assert fog_trend(img, air) is None


def _fogged_film(seed=0):
    """A fatty breast (0.015) on film whose fog brightens from 0.004 to 0.008 down the film,
    more than the step from the air to the threshold; bright pectoral muscle and a marker
    set the range. Truth box rows 40..460, columns 0..250."""
    rng = np.random.default_rng(seed)
    h, w = 500, 300
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.004 + 0.004 * (yy / h) + rng.normal(0, 0.0003, (h, w))
    breast = ((yy - 250) / 210.0) ** 2 + (xx / 250.0) ** 2 <= 1
    img[breast] = 0.015 + 0.002 * rng.random(breast.sum())
    muscle = breast & (xx < 160 - 0.5 * (yy - 40))
    img[muscle] = 0.045 + 0.003 * rng.random(muscle.sum())
    img[440:470, 270:290] = 0.06
    return np.clip(img, 0, 1).astype(np.float32), (0, 40, 250, 461)


def test_bright_fog_corner_stays_out_of_the_breast():
    img, truth = _fogged_film()
    seg = segment(img)
    x0, y0, x1, y1 = seg.box()
    assert abs(x1 - truth[2]) <= 8 and abs(y1 - truth[3]) <= 8 and y0 >= truth[1] - 8, seg.box()
    mask = seg.full_mask()
    assert mask[470:, 260:].sum() == 0  # the brightest fog, below and beside the breast
