"""Power-law noise: the spectral exponent is what the phantom's realism rests on."""

import numpy as np
import pytest

from mammodino.synth.noise import power_law_noise, radial_power_spectrum


def _slope(image, lo=0.03, hi=0.3):
    f, p = radial_power_spectrum(image)
    sel = (f > lo) & (f < hi)
    return np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)[0]


@pytest.mark.parametrize("beta", [2.0, 3.0])
def test_2d_spectrum_has_the_requested_exponent(beta):
    field = power_law_noise((256, 256), (1.0, 1.0), np.random.default_rng(1), beta=beta, k0=1 / 400)
    assert _slope(field) == pytest.approx(-beta, abs=0.3)


def test_projection_of_3d_beta3_noise_is_2d_beta3():
    # the reason a 3D phantom with beta = 3 gives mammogram-like projections
    field = power_law_noise((32, 192, 192), (1.0, 1.0, 1.0), np.random.default_rng(2), beta=3.0, k0=1 / 400)
    assert _slope(field.sum(axis=0)) == pytest.approx(-3.0, abs=0.3)


def test_unit_std_zero_mean_and_deterministic():
    a = power_law_noise((8, 40, 30), (4.0, 1.0, 1.0), np.random.default_rng(7))
    b = power_law_noise((8, 40, 30), (4.0, 1.0, 1.0), np.random.default_rng(7))
    c = power_law_noise((8, 40, 30), (4.0, 1.0, 1.0), np.random.default_rng(8))
    assert a.dtype == np.float32 and a.shape == (8, 40, 30)
    assert float(a.std()) == pytest.approx(1.0, abs=1e-4)
    assert abs(float(a.mean())) < 1e-4
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_stretch_elongates_structures_along_that_axis():
    f = power_law_noise((128, 128), (1.0, 1.0), np.random.default_rng(3), beta=3.0, stretch=(1.0, 2.0))
    # neighbours along the stretched axis (columns) are more alike than along rows
    along = np.corrcoef(f[:, :-4].ravel(), f[:, 4:].ravel())[0, 1]
    across = np.corrcoef(f[:-4, :].ravel(), f[4:, :].ravel())[0, 1]
    assert along > across + 0.02
