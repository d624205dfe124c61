"""Projection physics: Beer-Lambert with quantum noise, shift-and-add focusing."""

import numpy as np
import pytest

from mammodino.synth import imaging


def test_beer_lambert_and_poisson_noise_known_answer():
    mu = np.full((10, 200, 200), 0.05, dtype=np.float32)  # 40 mm of mu 0.05/mm -> 2.0
    log_img = imaging.ffdm_projection(mu, 4.0, photons=20000, rng=np.random.default_rng(0))
    assert float(log_img.mean()) == pytest.approx(2.0, abs=0.005)
    expected_std = 1.0 / np.sqrt(20000 * np.exp(-2.0))  # d(-ln N) = dN / N
    assert float(log_img.std()) == pytest.approx(expected_std, rel=0.05)
    air = imaging.ffdm_projection(np.zeros((4, 50, 50), np.float32), 1.0, 20000, np.random.default_rng(1))
    assert abs(float(air.mean())) < 0.002


def test_shift_rows_integer_fractional_and_edges():
    img = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(imaging._shift_rows(img, 2)[:, 0], [0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(imaging._shift_rows(img, -1)[:, 0], [1, 2, 3, 4, 5, 5])
    np.testing.assert_allclose(imaging._shift_rows(img, 0.25)[:, 0], [0, 0.75, 1.75, 2.75, 3.75, 4.75])


def test_shift_and_add_focuses_a_point_in_its_own_slice():
    n, dz, px = 24, 2.0, 0.9
    mu = np.zeros((n, 96, 8), dtype=np.float32)
    mu[:, 8:88] = 0.0456
    k = 7
    mu[k, 48, 4] += 2.0
    angles = imaging.dbt_angles(15, 25.0)
    proj = imaging.dbt_projections(mu, dz, px, angles, photons=1e12, rng=np.random.default_rng(0))
    vol = imaging.shift_and_add(proj, angles, (np.arange(n) + 0.5) * dz, px)
    peak = vol[:, :, 4].max(axis=1) - vol[:, :, 1].max(axis=1)
    assert int(np.argmax(peak)) == k
    # out-of-plane blur grows with distance from the point's slice
    assert peak[k] > 2 * peak[k + 4] and peak[k + 4] > peak[k + 12]
    # the point's total signal is conserved (it is only spread out)
    col = vol[:, 20:76, 4] - vol[:, 20:76, 1]
    np.testing.assert_allclose(col.sum(axis=1)[k], col.sum(axis=1)[k + 8], rtol=0.05)


def test_presentation_normalises_thickness_and_display_range():
    log_img = np.full((4, 4), 0.0456 * 50, dtype=np.float32)
    thick = np.full((4, 4), 50.0, dtype=np.float32)
    pres = imaging.presentation(log_img, thick, 50.0, 0.0456)
    np.testing.assert_allclose(pres, 1.0, rtol=1e-6)  # fat = 1 whatever T
    stored = imaging.to_display(np.array([0.0, 1.05, 2.1, 5.0], np.float32), 2.1, 12)
    assert stored.tolist() == [0, 2048, 4095, 4095]
