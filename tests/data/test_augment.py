"""Grayscale photometric augmentation: probabilities per crop kind, pixel effects."""

from __future__ import annotations

import numpy as np
import pytest

from mammodino.config import load_config
from mammodino.data.augment import AugParams, GrayAugment, gaussian_blur, normalize

N_DRAWS = 4000


@pytest.fixture(scope="module")
def aug():
    return GrayAugment.from_config(load_config(None).augment)


def rate(aug, kind, field, rng):
    draws = [aug.draw(rng, kind) for _ in range(N_DRAWS)]
    return np.mean([getattr(d, field) not in (None, False) for d in draws])


def test_blur_probabilities_are_the_intended_ones(aug):
    # blur_prob = [global 1, global 2, locals] = [1.0, 0.1, 0.5]; DINOv2's code inverts these.
    rng = np.random.default_rng(0)
    assert aug.blur_prob == (1.0, 0.1, 0.5)
    assert rate(aug, "global1", "blur_sigma", rng) == 1.0
    assert rate(aug, "global2", "blur_sigma", rng) == pytest.approx(0.1, abs=0.02)
    assert rate(aug, "local", "blur_sigma", rng) == pytest.approx(0.5, abs=0.03)


def test_solarize_only_on_global2(aug):
    rng = np.random.default_rng(1)
    assert rate(aug, "global2", "solarize", rng) == pytest.approx(0.2, abs=0.02)
    assert rate(aug, "global1", "solarize", rng) == 0.0
    assert rate(aug, "local", "solarize", rng) == 0.0


def test_jitter_and_gamma_probabilities_and_ranges(aug):
    rng = np.random.default_rng(2)
    draws = [aug.draw(rng, "local") for _ in range(N_DRAWS)]
    assert np.mean([d.brightness is not None for d in draws]) == pytest.approx(0.8, abs=0.02)
    assert np.mean([d.gamma is not None for d in draws]) == pytest.approx(0.5, abs=0.03)
    b = [d.brightness for d in draws if d.brightness is not None]
    g = [d.gamma for d in draws if d.gamma is not None]
    s = [d.blur_sigma for d in draws if d.blur_sigma is not None]
    assert 0.6 <= min(b) and max(b) <= 1.4
    assert 0.7 <= min(g) and max(g) <= 1.4
    assert 0.1 <= min(s) and max(s) <= 2.0


def test_configured_probabilities_are_honoured():
    cfg = load_config(None, ["augment.solarize_prob=1.0", "augment.jitter_prob=0.0"])
    cfg.augment.blur_prob = [0.0, 1.0, 0.0]
    aug = GrayAugment.from_config(cfg.augment)
    rng = np.random.default_rng(3)
    assert rate(aug, "global1", "blur_sigma", rng) == 0.0
    assert rate(aug, "global2", "blur_sigma", rng) == 1.0
    assert rate(aug, "global2", "solarize", rng) == 1.0
    assert rate(aug, "global1", "brightness", rng) == 0.0


def test_pixel_operations():
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    out = GrayAugment.apply(x.copy(), AugParams(solarize=True))
    assert np.allclose(out, np.where(x >= 0.5, 1 - x, x))
    out = GrayAugment.apply(x.copy(), AugParams(gamma=2.0))
    assert np.allclose(out, x**2, atol=1e-6)
    out = GrayAugment.apply(x.copy(), AugParams(brightness=1.5))
    assert np.allclose(out, np.clip(x * 1.5, 0, 1))
    out = GrayAugment.apply(x.copy(), AugParams(contrast=0.5))
    assert np.allclose(out, 0.5 * x + 0.5 * x.mean(), atol=1e-6)
    assert GrayAugment.apply(x.copy(), AugParams()).tolist() == x.tolist()


def test_blur_smooths_and_keeps_mean():
    rng = np.random.default_rng(4)
    x = rng.random((64, 64)).astype(np.float32)
    y = gaussian_blur(x.copy(), 2.0)
    assert y.std() < 0.5 * x.std()
    assert y.mean() == pytest.approx(x.mean(), abs=0.01)
    assert np.array_equal(gaussian_blur(x.copy(), 0.1), x)  # kernel < 3: identity
    assert gaussian_blur(np.ones((5, 5), np.float32), 2.0).shape == (5, 5)  # kernel capped


def test_normalize_constants():
    x = np.array([0.0, 0.5, 1.0], np.float32)
    assert normalize(x).tolist() == [-2.0, 0.0, 2.0]


def test_normalize_matches_the_models_preprocess():
    from mammodino.models.preprocess import normalize as model_normalize

    x = np.random.default_rng(5).random((7, 9)).astype(np.float32)
    assert np.allclose(normalize(x.copy()), model_normalize(x), atol=1e-6)
