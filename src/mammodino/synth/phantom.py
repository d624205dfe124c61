"""A 3D compressed-breast phantom as a stack of attenuation layers.

The volume is ``mu`` (n_layers, H, W) in 1/mm: z layers of equal thickness spanning the
compressed breast, each holding the exact partial volume of skin, fat, fibroglandular tissue,
Cooper's ligaments and (MLO) pectoral muscle. In-plane resolution is the image's; z is coarse
(the projection integrates over it, and DBT only needs as many layers as slices).

Tissue model:
- fibroglandular tissue = 3D power-law noise (beta 3) plus a smooth envelope (tissue gathers
  behind the nipple and keeps away from the skin: a subcutaneous fat layer), thresholded so the
  glandular volume fraction matches the density class; the threshold is soft over a fraction
  of a pixel so edges are partial volumes, not staircases;
- Cooper's ligaments = thin curves where a smooth band-pass field crosses zero (so they form
  the curved, loosely reticular strands seen in fatty regions), a few mm deep in z;
- skin = a 1.5 mm shell, pectoral muscle = full-thickness muscle attenuation.

Linear attenuation coefficients are those of breast tissues near 20 keV (Johns & Yaffe 1987).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mammodino.synth.geometry import ViewGeometry, layer_occupancy, thickness_profile
from mammodino.synth.noise import power_law_noise

# Linear attenuation, 1/mm, at ~20 keV.
MU_FAT = 0.0456
MU_GLAND = 0.0802
MU_SKIN = 0.0800
MU_MUSCLE = 0.0850
SKIN_MM = 1.5

# Volumetric glandular fraction per BI-RADS density class (centre of the draw).
DENSITY_FRACTION = {"A": 0.05, "B": 0.15, "C": 0.35, "D": 0.60}


@dataclass
class Phantom:
    mu: np.ndarray  # float32 (n_layers, H, W), 1/mm
    dz_mm: float
    gland_fraction: float  # realised glandular volume / breast volume (pectoral excluded)
    geometry: ViewGeometry


def _upsample(layer: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    h, w = shape_hw
    return cv2.resize(layer, (w, h), interpolation=cv2.INTER_CUBIC)


def _downsample(img: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    h, w = shape_hw
    return cv2.resize(img.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


def glandular_envelope(geom: ViewGeometry, coarse_hw: tuple[int, int]) -> np.ndarray:
    """Where fibroglandular tissue tends to be (2D, coarse grid, about 0..1): a cone behind the
    nipple, fading towards the chest wall (retroglandular fat) and the outer edges."""
    hc, wc = coarse_hw
    h, w = geom.shape_hw
    nx, ny = geom.nipple_xy
    xs = (np.arange(wc) + 0.5) * (w / wc)
    ys = (np.arange(hc) + 0.5) * (h / hc)
    u = (xs / max(nx, 1.0))[None, :]  # 0 at the chest wall, 1 at the nipple
    v = ((ys - ny) / (0.45 * h))[:, None]
    cone_halfwidth = 1.0 - 0.55 * np.clip(u, 0, 1)  # narrower towards the nipple
    ap = np.exp(-(((u - 0.5) / 0.42) ** 2))
    vert = np.exp(-((v / cone_halfwidth) ** 2) * 0.9)
    return (ap * vert).astype(np.float32)


def build_phantom(
    geom: ViewGeometry,
    n_layers: int,
    gland_fraction: float,
    rng: np.random.Generator,
    coarse: int = 2,
    subcutaneous_mm: float = 6.0,
    n_ligament_layers: int = 3,
) -> Phantom:
    """Fill the breast of ``geom`` with tissue; returns the attenuation layers.

    Args:
        geom: outline, skin distance and pectoral muscle of this view.
        n_layers: z layers (12 is plenty for FFDM; DBT uses one per reconstructed slice).
        gland_fraction: target volumetric glandular fraction (0..1).
        rng: randomness source.
        coarse: the noise is generated at 1/coarse of the in-plane resolution and upsampled.
        subcutaneous_mm: thickness of the gland-free fat layer under the skin.
        n_ligament_layers: depths at which a sheet of Cooper's ligaments is drawn.
    """
    T = geom.thickness_mm
    dz = T / n_layers
    thick = thickness_profile(geom.dist_mm, T)
    thick_in = thickness_profile(np.maximum(geom.dist_mm - SKIN_MM, 0.0), T - 2 * SKIN_MM)
    thick_in[geom.dist_mm <= SKIN_MM] = 0.0
    occ_out = layer_occupancy(thick, T, n_layers)
    occ_in = layer_occupancy(thick_in, T, n_layers)
    skin = occ_out - occ_in

    gland, zc = _gland_layers(geom, n_layers, gland_fraction, rng, coarse, subcutaneous_mm, thick_in)
    pect = _pectoral_weight(geom)
    gland *= 1.0 - pect[None]
    tissue = MU_FAT + (MU_GLAND - MU_FAT) * gland
    lig_total = _ligaments(geom, n_layers, rng, coarse, n_ligament_layers, zc) * (1.0 - 0.7 * gland)
    tissue = tissue + (MU_GLAND - MU_FAT) * lig_total

    tissue = tissue * (1.0 - pect[None]) + MU_MUSCLE * pect[None]
    mu = occ_in * tissue + skin * MU_SKIN

    breast_vol = float((occ_in * (1.0 - pect[None])).sum())
    realised = float((occ_in * gland).sum() / breast_vol) if breast_vol > 0 else 0.0
    return Phantom(mu=mu.astype(np.float32), dz_mm=dz, gland_fraction=realised, geometry=geom)


def _gland_layers(geom: ViewGeometry, n_layers: int, gland_fraction: float, rng: np.random.Generator, coarse: int,
                  subcutaneous_mm: float, thick_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fibroglandular fraction per layer and pixel: power-law noise on a coarse grid, pushed
    towards the glandular envelope and away from the skin, thresholded at the quantile that
    gives ``gland_fraction``. Returns ``(gland, zc)`` (``zc``: layer centres in mm, (n,1,1))."""
    h, w = geom.shape_hw
    T = geom.thickness_mm
    dz = T / n_layers
    px = geom.pixel_mm
    hc, wc = -(-h // coarse), -(-w // coarse)
    field = power_law_noise(
        (n_layers, hc, wc), (dz, px * coarse, px * coarse), rng, beta=3.0, stretch=(1.0, 1.0, 1.7)
    )
    dist_c = _downsample(geom.dist_mm, (hc, wc))
    thick_in_c = _downsample(thick_in, (hc, wc))
    zc = (np.arange(n_layers, dtype=np.float32) + 0.5)[:, None, None] * dz - T / 2.0
    d_faces = thick_in_c[None] / 2.0 - np.abs(zc)  # mm to the top/bottom skin
    d3 = np.minimum(dist_c[None], d_faces)
    away_from_skin = np.clip(d3 / subcutaneous_mm, 0.0, 1.0)
    env = glandular_envelope(geom, (hc, wc))
    field = field + 1.6 * env[None] - 3.5 * (1.0 - away_from_skin)
    pect_c = _downsample(geom.pectoral.astype(np.float32), (hc, wc)) > 0.5
    inner_c = (d_faces > 0) & (dist_c[None] > SKIN_MM) & ~pect_c[None]
    if inner_c.any() and gland_fraction > 0:
        thr = float(np.quantile(field[inner_c], 1.0 - gland_fraction))
    else:
        thr = float("inf")
    soft = 0.2  # edge width in field units: partial volumes over about a pixel
    gland = np.empty((n_layers, h, w), dtype=np.float32)
    for k in range(n_layers):
        up = _upsample(field[k], (h, w))
        gland[k] = np.clip((up - thr) / soft + 0.5, 0.0, 1.0)
    return gland, zc


def _pectoral_weight(geom: ViewGeometry) -> np.ndarray:
    """Muscle fraction: the full thickness deep in the corner, thinning towards its edge."""
    depth_in = cv2.distanceTransform(geom.pectoral.astype(np.uint8), cv2.DIST_L2, 5) * geom.pixel_mm
    pect = cv2.GaussianBlur(geom.pectoral.astype(np.float32), (0, 0), 0.7)
    return pect * (0.6 + 0.4 * np.clip(depth_in / 20.0, 0.0, 1.0))


def _ligaments(geom: ViewGeometry, n_layers: int, rng: np.random.Generator, coarse: int, n_ligament_layers: int,
               zc: np.ndarray) -> np.ndarray:
    """Cooper's ligaments (path length per layer, at most 1): zero crossings of a band-pass
    field, each sheet a few mm deep at a random depth."""
    h, w = geom.shape_hw
    T = geom.thickness_mm
    dz = T / n_layers
    px = geom.pixel_mm
    hc, wc = -(-h // coarse), -(-w // coarse)
    lig_total = np.zeros((n_layers, h, w), dtype=np.float32)
    for _ in range(n_ligament_layers):
        band = power_law_noise((hc, wc), (px * coarse, px * coarse), rng, beta=2.0, k_high=1 / 9.0)
        band = _upsample(band, (h, w))
        gy, gx = np.gradient(band)
        grad = np.sqrt(gx * gx + gy * gy) + 1e-6
        line = np.exp(-((band / grad / 0.55) ** 2))  # ~1 px wide wherever band crosses zero
        z_centre = rng.uniform(0.15, 0.85) * T
        depth = np.exp(-0.5 * ((zc[:, 0, 0] + T / 2 - z_centre) / max(2.0, dz)) ** 2)
        path_mm = rng.uniform(2.0, 3.5)
        weights = (path_mm / dz) * depth / depth.sum()
        lig_total += weights[:, None, None] * line[None]
    return np.minimum(lig_total, 1.0)
