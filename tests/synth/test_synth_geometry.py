"""Breast outline, thickness and exact partial-volume layers."""

import numpy as np
import pytest

from mammodino.synth.geometry import BreastShape, layer_occupancy, thickness_profile, view_geometry

SHAPE = BreastShape(half_height=0.4, depth=0.75, squareness=2.2, thickness_mm=50.0)


def _geom(view, seed=0):
    return view_geometry(view, (256, 200), 0.9, SHAPE, np.random.default_rng(seed))


def test_layer_occupancy_integrates_to_the_local_thickness():
    rng = np.random.default_rng(0)
    thick = rng.uniform(0, 50, size=(20, 30)).astype(np.float32)
    thick[0, 0], thick[0, 1] = 0.0, 50.0
    occ = layer_occupancy(thick, 50.0, 12)
    assert occ.shape == (12, 20, 30)
    assert occ.min() >= 0 and occ.max() <= 1
    np.testing.assert_allclose(occ.sum(axis=0) * (50.0 / 12), thick, atol=1e-3)
    # a slab centred at T/2 fills the middle layers first
    assert occ[:, 0, 0].sum() == 0 and np.allclose(occ[:, 0, 1], 1)
    half = layer_occupancy(np.full((1, 1), 25.0, np.float32), 50.0, 4)[:, 0, 0]
    np.testing.assert_allclose(half, [0, 1, 1, 0], atol=1e-6)


def test_thickness_profile_rounds_off_towards_the_skin():
    d = np.array([0.0, 5.0, 12.5, 25.0, 40.0], dtype=np.float32)
    t = thickness_profile(d, 50.0)
    assert t[0] == 0 and t[-1] == pytest.approx(50.0) and t[-2] == pytest.approx(50.0)
    assert np.all(np.diff(t) >= 0)
    assert t[2] == pytest.approx(50.0 * np.sqrt(1 - 0.5**2), rel=1e-5)  # semicircular edge


def test_cc_is_a_half_ellipse_on_the_chest_wall_without_pectoral():
    g = _geom("CC")
    assert g.inside[:, 0].any() and not g.inside[:, -1].any()  # chest wall on the left
    assert not g.inside[0].any() and not g.inside[-1].any()  # does not fill the rows
    assert not g.pectoral.any()
    # the chest wall is not skin: distance there grows with depth, unlike at the outline
    mid = g.shape_hw[0] // 2
    assert g.dist_mm[mid, 0] > 20.0


def test_mlo_reaches_the_axilla_and_has_a_pectoral_triangle():
    g = _geom("MLO")
    assert g.inside[0, 0]  # runs out of the field at the top, at the chest wall
    assert g.pectoral[2, 2] and not g.pectoral[-3, 2]  # upper chest-wall corner only
    assert np.all(g.inside[g.pectoral])
    rows = np.nonzero(g.pectoral.any(axis=1))[0]
    widths = g.pectoral.sum(axis=1)[rows]
    assert widths[0] > widths[-1]  # a triangle narrowing downwards
    assert g.thickness_mm > SHAPE.thickness_mm  # MLO compresses a little thicker


def test_outline_is_deterministic_per_rng():
    a, b = _geom("MLO", 5), _geom("MLO", 5)
    assert np.array_equal(a.inside, b.inside) and np.array_equal(a.pectoral, b.pectoral)
    assert not np.array_equal(a.inside, _geom("MLO", 6).inside)
