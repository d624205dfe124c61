"""Tissue volume: glandular fraction per density class, attenuation ranges, air outside."""

import numpy as np
import pytest

from mammodino.synth.geometry import BreastShape, view_geometry
from mammodino.synth.phantom import DENSITY_FRACTION, MU_FAT, MU_GLAND, MU_MUSCLE, build_phantom

SHAPE = BreastShape(half_height=0.4, depth=0.75, squareness=2.2, thickness_mm=50.0)


def _phantom(view="CC", fraction=0.15, seed=0, layers=12):
    rng = np.random.default_rng(seed)
    g = view_geometry(view, (256, 200), 0.9, SHAPE, rng)
    return build_phantom(g, layers, fraction, rng)


@pytest.mark.parametrize("density", ["A", "B", "C", "D"])
def test_glandular_fraction_matches_the_density_class(density):
    target = DENSITY_FRACTION[density]
    ph = _phantom(fraction=target, seed=1)
    assert ph.gland_fraction == pytest.approx(target, rel=0.3, abs=0.02)


def test_denser_classes_attenuate_more():
    totals = [float(_phantom(fraction=DENSITY_FRACTION[d], seed=2).mu.sum()) for d in "ABCD"]
    assert totals == sorted(totals) and totals[-1] > 1.2 * totals[0]


def test_attenuation_is_air_outside_and_tissue_inside():
    ph = _phantom(view="MLO", fraction=0.35)
    g = ph.geometry
    proj = ph.mu.sum(axis=0) * ph.dz_mm
    assert np.all(proj[~g.inside] == 0)  # nothing outside the skin line
    assert ph.mu.min() >= 0 and ph.mu.max() <= MU_MUSCLE + (MU_GLAND - MU_FAT) + 1e-6
    # deep inside, the full thickness is tissue: between all-fat and all-gland
    deep = g.dist_mm > 40
    per_mm = proj[deep & ~g.pectoral] / g.thickness_mm
    assert per_mm.min() > MU_FAT * 0.97 and per_mm.max() < MU_GLAND * 1.15
    # pectoral muscle is denser than the breast next to it
    assert proj[g.pectoral].mean() > proj[deep & ~g.pectoral].mean()


def test_subcutaneous_fat_keeps_gland_off_the_skin():
    ph = _phantom(fraction=0.6, seed=4)
    g = ph.geometry
    proj = ph.mu.sum(axis=0) * ph.dz_mm / g.thickness_mm
    ring = (g.dist_mm > 28) & (g.dist_mm < 31)  # full thickness, but near the outline
    core = g.dist_mm > 60
    assert proj[ring].mean() < proj[core].mean()
