"""Power-law (1/f^beta) noise: the texture statistics of breast parenchyma.

The power spectrum of real mammograms falls as 1/f^beta with beta near 3 (Burgess 2001;
Reiser & Nishikawa 2010 thresholded such noise to make breast phantoms). Projecting a 3D
field with spectrum 1/|k|^beta through z keeps the kz = 0 plane of its spectrum, so the
projection again has a 1/f^beta spectrum: beta = 3 in 3D gives mammogram-like 2D texture.

The field is made at a coarse grid (FFT cost is the whole price) and upsampled by the caller.
"""

from __future__ import annotations

import numpy as np


def power_law_noise(
    shape: tuple[int, ...],
    spacing_mm: tuple[float, ...],
    rng: np.random.Generator,
    beta: float = 3.0,
    k0: float = 1.0 / 80.0,
    k_high: float | None = None,
    stretch: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Gaussian random field with power spectrum ``(|k|^2 + k0^2)^(-beta/2)``, zero mean, unit std.

    Args:
        shape: grid shape, any number of dimensions (e.g. ``(Z, H, W)``).
        spacing_mm: voxel size per axis in mm, so anisotropic grids keep an isotropic spectrum.
        rng: the only source of randomness (determinism is the caller's seed).
        beta: spectral exponent; 3 for breast parenchyma.
        k0: low-frequency roll-off in cycles/mm, so one huge blob does not dominate.
        k_high: optional Gaussian high-frequency cut-off (cycles/mm): a band-pass field whose
            zero crossings are smooth curves (used for Cooper's ligaments).
        stretch: optional per-axis elongation (e.g. ``(1, 1, 1.6)``: structures 1.6x longer
            along the last axis), for the ductal, nipple-ward grain of parenchyma.

    Example:
        >>> f = power_law_noise((8, 64, 48), (4.0, 1.0, 1.0), np.random.default_rng(0))
        >>> f.shape, round(float(f.std()), 3)
        ((8, 64, 48), 1.0)
    """
    white = rng.standard_normal(shape).astype(np.float32)
    spec = np.fft.rfftn(white)
    k2 = np.zeros(spec.shape, dtype=np.float64)
    for axis, (n, d) in enumerate(zip(shape, spacing_mm)):
        freq = np.fft.rfftfreq(n, d) if axis == len(shape) - 1 else np.fft.fftfreq(n, d)
        view = [1] * len(shape)
        view[axis] = freq.size
        if stretch is not None:
            freq = freq * stretch[axis]
        k2 = k2 + (freq.reshape(view) ** 2)
    amplitude = (k2 + k0 * k0) ** (-beta / 4.0)
    if k_high is not None:
        amplitude = amplitude * np.exp(-k2 / (2.0 * k_high * k_high))
    amplitude.flat[0] = 0.0  # zero mean
    field = np.fft.irfftn(spec * amplitude, s=shape, axes=tuple(range(len(shape))))
    field = field.astype(np.float32)
    std = float(field.std())
    return field / std if std > 0 else field


def radial_power_spectrum(image: np.ndarray, n_bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a 2D image (frequencies in cycles/pixel).

    Used by the tests to check the spectral exponent of the generated texture.
    """
    img = image - image.mean()
    power = np.abs(np.fft.fft2(img)) ** 2
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.fftfreq(img.shape[1])[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    edges = np.logspace(np.log10(2.0 / min(img.shape)), np.log10(0.5), n_bins + 1)
    centres, values = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (f >= lo) & (f < hi)
        if sel.any():
            centres.append(np.sqrt(lo * hi))
            values.append(power[sel].mean())
    return np.asarray(centres), np.asarray(values)
