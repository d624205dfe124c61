"""X-ray imaging of a phantom: FFDM projection and DBT limited-angle acquisition + shift-and-add.

FFDM: I = Poisson(I0 * exp(-sum_z mu dz)) (Beer-Lambert with quantum noise), then the log
image -ln(I / I0) -- the line integral, high where tissue is dense -- is what a "for
presentation" image shows (tissue bright, air dark).

DBT: the tube sweeps an arc parallel to the chest wall (so shifts run along image rows),
``n_projections`` exposures evenly over +-``half_angle_deg`` sharing the FFDM dose (the
generator's default is 15 over +-25 deg). With a
parallel-beam approximation, a structure at height h above the detector lands h*tan(theta)
further along the sweep in the projection at angle theta. Shift-and-add undoes that shift for
one height per slice: structures at that height add up sharp, others smear over
2*|h - h_slice|*tan(half angle). Out-of-plane blur and slice-to-slice coherence come from that
physics, not from a filter.
"""

from __future__ import annotations

import numpy as np


def line_integral(mu: np.ndarray, dz_mm: float) -> np.ndarray:
    """Noise-free sum of mu dz through z: (n_layers, H, W) -> (H, W)."""
    return mu.sum(axis=0, dtype=np.float32) * np.float32(dz_mm)


def detect(line_int: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Quantum-noise detection and log transform: returns -ln(I / I0) (float32)."""
    expected = photons * np.exp(-line_int.astype(np.float64))
    counts = rng.poisson(expected).astype(np.float64)
    counts = np.maximum(counts, 0.5)  # a zero count is one very dense pixel, not -inf
    return (-np.log(counts / photons)).astype(np.float32)


def ffdm_projection(mu: np.ndarray, dz_mm: float, photons: float, rng: np.random.Generator) -> np.ndarray:
    """The log image of a full-field digital mammogram (float32, ~0 in air)."""
    return detect(line_integral(mu, dz_mm), photons, rng)


def _shift_rows(img: np.ndarray, shift_px: float) -> np.ndarray:
    """``out[y] = img[y - shift]`` with linear interpolation. Rows from beyond the edge repeat
    the edge row: the breast runs on past the top of an MLO field, and zeros there would
    print a false band along the edge of every slice."""
    h = img.shape[0]
    n = int(np.floor(shift_px))
    f = np.float32(shift_px - n)
    rows = np.arange(h) - n
    a = img[np.clip(rows, 0, h - 1)]
    if f == 0:
        return a
    b = img[np.clip(rows - 1, 0, h - 1)]
    return (np.float32(1.0) - f) * a + f * b


def dbt_angles(n_projections: int, half_angle_deg: float) -> np.ndarray:
    return np.deg2rad(np.linspace(-half_angle_deg, half_angle_deg, n_projections))


def dbt_projections(
    mu: np.ndarray,
    dz_mm: float,
    pixel_mm: float,
    angles: np.ndarray,
    photons: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Limited-angle log projections (n_angles, H, W); the dose is shared between them."""
    n_layers = mu.shape[0]
    heights = (np.arange(n_layers) + 0.5) * dz_mm
    per_view = photons / len(angles)
    out = np.empty((len(angles),) + mu.shape[1:], dtype=np.float32)
    for i, theta in enumerate(angles):
        acc = np.zeros(mu.shape[1:], dtype=np.float32)
        for k in range(n_layers):
            acc += _shift_rows(mu[k], heights[k] * np.tan(theta) / pixel_mm)
        out[i] = detect(acc * np.float32(dz_mm / np.cos(theta)), per_view, rng)
    return out


def shift_and_add(
    projections: np.ndarray, angles: np.ndarray, slice_heights_mm: np.ndarray, pixel_mm: float
) -> np.ndarray:
    """Reconstruct slices at the given heights: mean over angles of the projection shifted back.

    Returns (n_slices, H, W) float32 in line-integral units (each slice ~ the FFDM log image,
    sharp at its own height).
    """
    n = len(angles)
    vol = np.zeros((len(slice_heights_mm),) + projections.shape[1:], dtype=np.float32)
    for j, hgt in enumerate(slice_heights_mm):
        for i, theta in enumerate(angles):
            vol[j] += _shift_rows(projections[i] * np.float32(np.cos(theta)), -hgt * np.tan(theta) / pixel_mm)
        vol[j] /= n
    return vol


def slice_processing(
    vol: np.ndarray, photons: float, rng: np.random.Generator, detail: float = 1.5, sigma_px: float = 3.0,
    noise: float = 1.0,
) -> np.ndarray:
    """What a real reconstruction adds to shift-and-add: each slice shows its own depth.

    Shift-and-add leaves every slice dominated by the out-of-plane tissue that all slices
    share, so on our coarse pixels adjacent slices were near copies (a random encoder found a
    slice's true neighbour 100 % of the time). Two steps of a vendor's reconstruction fix that:

    * detail enhancement (the high-pass of filtered backprojection, then spectral mixing):
      ``s + detail * (s - blur(s, sigma_px))``. Structures in focus keep their fine detail
      through shift-and-add, out-of-plane ones are smeared, so the boost lifts the in-focus
      layer above the shared background;
    * per-slice quantum noise: on a real detector (~0.1 mm pixels, 1 mm slices) the shift
      between adjacent slices is several pixels at the wide angles, so their noise is nearly
      independent; on our 0.9 mm pixels it is under one pixel and the noise was shared. Each
      slice gets independent noise of ``noise`` x the FFDM quantum noise at that pixel
      (1 / sqrt(expected counts)); DBT slices are noisier than an FFDM in practice.
    """
    import cv2

    out = np.empty_like(vol, dtype=np.float32)
    for j, s in enumerate(vol.astype(np.float32)):
        s = s + np.float32(detail) * (s - cv2.GaussianBlur(s, (0, 0), sigma_px))
        std = np.float32(noise) / np.sqrt(np.float32(photons) * np.exp(-np.clip(s, 0.0, None)))
        out[j] = s + std * rng.standard_normal(s.shape, dtype=np.float32)
    return out


def to_display(log_image: np.ndarray, full_scale: float, bits: int, gamma: float = 1.0) -> np.ndarray:
    """Map the log image to stored unsigned integers, 0 = air, ``2**bits - 1`` = full_scale.

    A fixed physical scale (not per-image normalisation) keeps dense breasts brighter than
    fatty ones, as in real presentation images.
    """
    v = np.clip(log_image / np.float32(full_scale), 0.0, 1.0)
    if gamma != 1.0:
        v = v**gamma
    top = (1 << bits) - 1
    return np.rint(v * top).astype(np.uint16)


def presentation(log_image: np.ndarray, thick_mm: np.ndarray, thickness_mm: float, mu_ref: float,
                 equalize: float = 0.75) -> np.ndarray:
    """Vendor-style processing of the log image into "for presentation" units.

    Peripheral equalisation adds back ``equalize`` of the fat-equivalent path missing where
    the compressed breast thins towards the skin line, so the periphery is not a dark rim;
    dividing by the fat-equivalent full thickness (``mu_ref * T``) makes fat ~1 and glandular
    tissue ~1.75 whatever the compression, so density, not thickness, sets brightness.
    """
    eq = log_image + np.float32(equalize * mu_ref) * (np.float32(thickness_mm) - thick_mm) * (thick_mm > 0)
    return (eq / np.float32(mu_ref * thickness_mm)).astype(np.float32)
