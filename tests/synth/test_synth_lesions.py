"""Masses and calcification clusters: where they go, how much they add, their boxes."""

import numpy as np
import pytest

from mammodino.synth.geometry import BreastShape, view_geometry
from mammodino.synth.lesions import CALCIFICATION, MASS, LesionSpec, draw_spec, insert_lesion
from mammodino.synth.phantom import MU_FAT, build_phantom

SHAPE = BreastShape(half_height=0.4, depth=0.75, squareness=2.2, thickness_mm=50.0)


def _phantom(view="CC", seed=0):
    rng = np.random.default_rng(seed)
    g = view_geometry(view, (512, 400), 0.45, SHAPE, rng)
    return build_phantom(g, 12, 0.15, rng), rng


@pytest.mark.parametrize("spiculated", [False, True])
@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_mass_is_denser_inside_its_box_and_inside_the_breast(view, spiculated):
    ph, rng = _phantom(view)
    before = ph.mu.copy()
    spec = LesionSpec(MASS, 0.09, spiculated, 0.4, 1.4, 0, seed=11)
    placed = insert_lesion(ph, spec, rng)
    x0, y0, x1, y1 = placed.box
    h, w = ph.geometry.shape_hw
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    added = (ph.mu - before).sum(axis=0) * ph.dz_mm
    assert added[y0:y1, x0:x1].mean() > 0.2  # ~0.3-0.5 of line integral: conspicuous
    assert not ph.geometry.pectoral[int(placed.centre_xy[1]), int(placed.centre_xy[0])]
    assert np.all(added[~ph.geometry.inside] == 0)
    # diameter ~ 9 % of the breast width (the box is the core, spicules excluded)
    size = max(x1 - x0, y1 - y0)
    assert 0.06 < size / ph.geometry.breast_width_px < 0.13
    z0, z1 = placed.z_mm
    assert 0 < z0 < z1 < ph.geometry.thickness_mm


def test_calcifications_add_their_calcium_volume():
    ph, rng = _phantom("CC", seed=3)
    before = ph.mu.copy()
    spec = LesionSpec(CALCIFICATION, 0.06, False, 0.4, 2.5, 10, seed=5)
    placed = insert_lesion(ph, spec, rng)
    added = (ph.mu - before) * ph.dz_mm  # per layer line integral
    px = ph.geometry.pixel_mm
    calcium_mm3 = float(added.sum()) * px * px / (spec.contrast - MU_FAT)
    v_min, v_max = np.pi / 6 * 0.6**3, np.pi / 6 * 1.3**3
    assert 10 * v_min * 0.95 < calcium_mm3 < 10 * v_max * 1.05
    x0, y0, x1, y1 = placed.box
    outside = added.sum(axis=0).copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0  # every speck is inside the box
    assert (x1 - x0) < 0.12 * ph.geometry.breast_width_px


def test_draw_spec_mix_and_ranges():
    specs = [draw_spec(np.random.default_rng(i)) for i in range(300)]
    masses = [s for s in specs if s.kind == MASS]
    calcs = [s for s in specs if s.kind == CALCIFICATION]
    assert 0.5 < len(masses) / len(specs) < 0.7
    assert all(0.05 <= s.size_frac <= 0.12 for s in masses)
    assert all(6 <= s.n_specks <= 16 for s in calcs)
    assert 0.3 < np.mean([s.spiculated for s in masses]) < 0.7


def test_same_spec_gives_matching_lesions_in_cc_and_mlo():
    spec = LesionSpec(MASS, 0.08, False, 0.5, 1.3, 0, seed=9)
    sizes = []
    for view in ("CC", "MLO"):
        ph, rng = _phantom(view, seed=4)
        x0, y0, x1, y1 = insert_lesion(ph, spec, rng).box
        sizes.append(((x1 - x0) + (y1 - y0)) / 2)
    assert sizes[0] == pytest.approx(sizes[1], rel=0.25)
