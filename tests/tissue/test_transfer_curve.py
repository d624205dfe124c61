"""The threshold step of a crowded (darker) grey-level curve: known answers."""

import math

import numpy as np
import pytest

from mammodino.tissue.transfer_curve import CROWDED_MEDIAN, MIN_STEP, crowded_step, tissue_median_share


def test_median_share_of_the_way_from_the_air_to_the_top():
    tissue = np.linspace(0.1, 1.1, 101)  # median 0.6, 90th percentile 1.0
    assert tissue_median_share(tissue, 0.1) == pytest.approx(0.5 / 0.9)
    assert tissue_median_share(np.array([]), 0.0) is None
    assert tissue_median_share(np.full(10, 0.3), 0.3) is None  # flat: no top above the air


def test_a_plain_curve_keeps_the_step():
    assert crowded_step(0.61, 0.10) is None  # the DDSM films' median share
    assert crowded_step(CROWDED_MEDIAN, 0.10) is None
    assert crowded_step(None, 0.10) is None
    assert crowded_step(0.0, 0.10) is None


def test_a_power_curve_gets_the_step_the_periphery_had_before_it():
    """A breast rendered through v -> v ** g moves its median share from m to m ** g; the step
    share s becomes s ** g, so the same periphery stays above the threshold."""
    g = 1.8
    share = CROWDED_MEDIAN ** g
    assert crowded_step(share, 0.10) == pytest.approx(0.10 ** g)
    assert crowded_step(0.3, 0.10) == pytest.approx(0.10 ** (math.log(0.3) / math.log(CROWDED_MEDIAN)))
    assert crowded_step(1e-6, 0.10) == MIN_STEP


def test_a_power_curve_on_a_synthetic_breast_keeps_its_periphery():
    """A half-disc breast with a dim periphery ring (0.2 of the way to the dense core) on
    noisy air, through gamma 2.2: the box still reaches the skin line (the plain 10 % step
    stopped 30 px short, at the fat)."""
    from mammodino.tissue.segmentation import segment

    rng = np.random.default_rng(0)
    h, w = 400, 240
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot((yy - h / 2) / (h / 2 - 20), xx / (w - 30))
    img = np.full((h, w), 0.03)
    img[r < 1.0] = 0.2  # periphery: subcutaneous fat seen through little tissue
    img[r < 0.85] = 0.5
    img[(r < 0.6) & (rng.random((h, w)) < 0.6)] = 0.95  # dense, patchy
    img = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)
    dark = img ** 2.2
    x0, y0, x1, y1 = segment((dark * 65535).astype(np.uint16)).box()
    edge = int(np.flatnonzero((r < 1.0).any(axis=0))[-1]) + 1
    assert x1 >= edge - 4, (x1, edge)


def test_phantoms_with_a_sharp_skin_line_keep_their_first_mask(tmp_path, monkeypatch):
    """The demo's phantoms (bright dense spots on fat) sit low on the curve too, but their skin
    line is sharp: the smaller step moved a few edge pixels on 12 of the demo's 80 images, a
    change with no gain. The second mask must add a periphery to count."""
    from mammodino.io.dicom_reader import read_dicom
    from mammodino.synth.generate import generate_phantoms
    from mammodino.tissue import segmentation

    generate_phantoms(tmp_path / "ph", n_ffdm=24, n_dbt=0, seed=1, ffdm_shape=(512, 400), mass_scale=2.0)
    images = [read_dicom(p, dtype="uint16").pixels for p in sorted((tmp_path / "ph" / "ffdm").glob("*.dcm"))]
    first = [segmentation.segment(px).small_mask.copy() for px in images]
    monkeypatch.setattr(segmentation, "crowded_step", lambda share, step: None)
    plain = [segmentation.segment(px).small_mask for px in images]
    assert all((a == b).all() for a, b in zip(first, plain))
    monkeypatch.undo()
    monkeypatch.setattr(segmentation, "MIN_PERIPHERY_GAIN", 0.0)  # without the rule: edge pixels move
    assert any((segmentation.segment(px).small_mask != b).any() for px, b in zip(images, plain))
