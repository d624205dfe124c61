"""Film fog trend: a plane fitted to the air (known answer), and the fog corner it keeps out
of the breast mask."""

import numpy as np

from mammodino.tissue.fog import fog_trend
from mammodino.tissue.segmentation import segment
from support.film_phantoms import FATTY_FILM_BOX, fatty_film


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
    """Fog brightening from 0.004 to 0.008 down the film: more than the step from the air to
    the threshold."""
    return fatty_film(fog_rise=0.004, seed=seed), FATTY_FILM_BOX


def test_bright_fog_corner_stays_out_of_the_breast():
    img, truth = _fogged_film()
    seg = segment(img)
    x0, y0, x1, y1 = seg.box()
    assert abs(x1 - truth[2]) <= 8 and abs(y1 - truth[3]) <= 8 and y0 >= truth[1] - 8, seg.box()
    mask = seg.full_mask()
    assert mask[470:, 260:].sum() == 0  # the brightest fog, below and beside the breast
