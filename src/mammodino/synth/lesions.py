"""Lesions inserted into a phantom: masses and calcification clusters, in 3D.

A lesion is drawn per view from a :class:`LesionSpec` shared by both views of a breast (same
type, size, shape family and distance from the nipple), the way a radiologist matches a
finding between CC and MLO; the rest of its position is drawn per view.

- mass: a lobulated 3D ellipsoid denser than glandular tissue, either circumscribed (soft
  ~1 px edge) or spiculated (irregular core plus thin radiating 3D strands). Partial volumes
  are integrated with sub-layer z samples, so the projection is smooth even on coarse layers.
- calcification cluster: 6-16 specks of 0.6-1.3 mm of calcium hydroxyapatite (mu 2-3 /mm
  near 20 keV, ~50x fat) in a small 3D region; each speck is rendered with its exact volume spread as a small Gaussian.

Every insertion returns the lesion's box in image pixels (canonical orientation, chest wall
left; x1/y1 exclusive) and its z range in mm, from which the labels derive.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mammodino.synth.phantom import MU_FAT, MU_GLAND, Phantom

MASS = "mass"
CALCIFICATION = "calcification"


@dataclass(frozen=True)
class LesionSpec:
    """What one breast's lesion is; shared by its CC and MLO views."""

    kind: str  # mass | calcification
    size_frac: float  # mass diameter / cluster diameter as a fraction of breast width
    spiculated: bool
    nipple_dist_frac: float  # distance behind the nipple as a fraction of nipple depth
    contrast: float  # mass: mu / mu_gland; calcification: mu of calcium in 1/mm
    n_specks: int
    seed: int  # shape details (lobulation) shared by both views


@dataclass
class PlacedLesion:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive), canonical
    z_mm: tuple[float, float]  # height range above the detector
    centre_xy: tuple[float, float]


def draw_spec(rng: np.random.Generator, kind: str | None = None, mass_scale: float = 1.0) -> LesionSpec:
    """A random lesion: 60 % masses (half spiculated), 40 % calcification clusters.

    ``mass_scale`` multiplies the mass diameter (5-12 % of the breast at 1.0)."""
    if kind is None:
        kind = MASS if rng.random() < 0.6 else CALCIFICATION
    if kind == MASS:
        return LesionSpec(
            kind=MASS,
            size_frac=float(rng.uniform(0.05, 0.12)) * float(mass_scale),
            spiculated=bool(rng.random() < 0.5),
            nipple_dist_frac=float(rng.uniform(0.25, 0.7)),
            contrast=float(rng.uniform(1.25, 1.5)),
            n_specks=0,
            seed=int(rng.integers(2**31)),
        )
    return LesionSpec(
        kind=CALCIFICATION,
        size_frac=float(rng.uniform(0.04, 0.08)),
        spiculated=False,
        nipple_dist_frac=float(rng.uniform(0.2, 0.7)),
        contrast=float(rng.uniform(2.0, 3.0)),
        n_specks=int(rng.integers(6, 17)),
        seed=int(rng.integers(2**31)),
    )


def _choose_centre(ph: Phantom, spec: LesionSpec, margin_mm: float, rng: np.random.Generator):
    """A pixel inside the breast, ``margin_mm`` from the skin, off the pectoral muscle, as close
    as possible to the requested distance behind the nipple."""
    g = ph.geometry
    h, w = g.shape_hw
    nx, _ = g.nipple_xy
    x_target = nx * (1.0 - spec.nipple_dist_frac)
    grow = int(margin_mm / g.pixel_mm) + 2
    pect = cv2.dilate(g.pectoral.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=grow)
    ok = (g.dist_mm > margin_mm) & (pect == 0)
    # keep off the image edges (the MLO axilla runs out of the field at the top)
    edge = int(np.ceil(margin_mm / g.pixel_mm)) + 2
    ok[:edge], ok[-edge:] = False, False
    for tol in (0.04, 0.1, 0.2, 1.0):
        cols = np.abs(np.arange(w) + 0.5 - x_target) < tol * w
        ys, xs = np.nonzero(ok & cols[None, :])
        if ys.size:
            i = int(rng.integers(ys.size))
            return float(xs[i]) + rng.uniform(0, 1), float(ys[i]) + rng.uniform(0, 1)
        if margin_mm > 3:
            ok = (g.dist_mm > margin_mm / 2) & (pect == 0)
            ok[: edge // 2], ok[-(edge // 2) :] = False, False
    ys, xs = np.nonzero(g.inside)
    i = int(rng.integers(ys.size))
    return float(xs[i]), float(ys[i])


def _harmonics(rng: np.random.Generator, amplitude: float, orders=(2, 3, 4, 5)):
    return [(n, rng.normal(0, amplitude / np.sqrt(n - 1)), rng.uniform(0, 2 * np.pi)) for n in orders]


def insert_mass(ph: Phantom, spec: LesionSpec, rng: np.random.Generator) -> PlacedLesion:
    g = ph.geometry
    px, dz, n_layers = g.pixel_mm, ph.dz_mm, ph.mu.shape[0]
    h, w = g.shape_hw
    shape_rng = np.random.default_rng(spec.seed)
    r_mm = spec.size_frac * g.breast_width_px * px / 2.0
    elong = shape_rng.uniform(0.85, 1.18)
    rx, ry = r_mm * elong, r_mm / elong
    rz = min(r_mm * shape_rng.uniform(0.8, 1.05), g.thickness_mm / 2.0 - 4.0)
    cx, cy = _choose_centre(ph, spec, r_mm + 4.0, rng)
    zc = g.thickness_mm / 2.0 + rng.uniform(-1, 1) * max(g.thickness_mm / 2.0 - rz - 4.0, 0.0)
    lob = _harmonics(shape_rng, 0.12 if spec.spiculated else 0.06)
    lob_z = shape_rng.normal(0, 0.06 if spec.spiculated else 0.03)

    reach = r_mm * (2.6 if spec.spiculated else 1.3) / px + 3
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, w)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, h)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = (xx + 0.5 - cx) * px, (yy + 0.5 - cy) * px
    phi = np.arctan2(dy, dx)
    # lobulation as a function of the 3D direction: cos(n phi) * sin(polar)^n is smooth
    # everywhere (it vanishes along the z axis), so the 3D shape has no seam at its axis
    harm = [(n, a * np.cos(n * phi + p)) for n, a, p in lob]
    rxy2 = (dx / rx) ** 2 + (dy / ry) ** 2
    edge_mm = px * (1.0 if not spec.spiculated else 1.4)
    mu_mass = MU_GLAND * spec.contrast

    occ_core = np.zeros((n_layers,) + xx.shape, dtype=np.float32)
    k_lo = max(int((zc - rz) / dz), 0)
    k_hi = min(int((zc + rz) / dz) + 1, n_layers)
    subs = 6
    for k in range(k_lo, k_hi):
        acc = np.zeros(xx.shape, dtype=np.float32)
        for s in range(subs):
            zr = ((k + (s + 0.5) / subs) * dz - zc) / rz
            r3 = np.sqrt(rxy2 + zr * zr)
            sin_polar = np.sqrt(rxy2) / np.maximum(r3, 1e-6)
            rho = 1.0 + lob_z * (1.0 - 2.0 * sin_polar * sin_polar)
            for n, term in harm:
                rho = rho + term * sin_polar**n
            rad = r3 / np.clip(rho, 0.7, 1.4)
            acc += np.clip((1.0 - rad) * r_mm / edge_mm + 0.5, 0.0, 1.0)
        occ_core[k] = acc / subs

    occ = occ_core.copy()
    if spec.spiculated:
        n_sp = int(shape_rng.integers(10, 25))
        for _ in range(n_sp):
            ang = shape_rng.uniform(0, 2 * np.pi)
            uz = float(np.clip(shape_rng.normal(0, 0.25), -0.6, 0.6))
            ux, uy = np.cos(ang) * np.sqrt(1 - uz * uz), np.sin(ang) * np.sqrt(1 - uz * uz)
            length = r_mm * shape_rng.uniform(1.3, 2.5)
            # param along the in-plane projection of the strand, 0 at the centre, 1 at the tip
            lxy = length * np.sqrt(ux * ux + uy * uy)
            t = np.clip((dx * ux + dy * uy) / (length * (ux * ux + uy * uy) + 1e-9), 0.0, 1.0)
            ddx, ddy = dx - t * length * ux, dy - t * length * uy
            width = px * 0.9 * (1.0 - 0.75 * t)
            strand = np.exp(-(ddx * ddx + ddy * ddy) / (width * width)) * (t * lxy > 0.5 * r_mm)
            layer = np.clip(((zc + t * length * uz) / dz).astype(int), 0, n_layers - 1)
            val = strand * min(1.0, 2.0 / dz)  # ~2 mm thick strand, as a layer fraction
            for k in np.unique(layer[strand > 0.01]):
                occ[k] = np.maximum(occ[k], np.where(layer == k, val, 0.0))

    # the mass replaces whatever tissue was there (inside the skin only)
    region = ph.mu[:, y0:y1, x0:x1]
    inside = (region > 0).astype(np.float32)
    ph.mu[:, y0:y1, x0:x1] = region * (1.0 - occ) + mu_mass * occ * inside

    proj = occ_core.sum(axis=0)
    ys, xs = np.nonzero(proj > 0.1 * proj.max()) if proj.max() > 0 else (np.array([0]), np.array([0]))
    box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
    return PlacedLesion(box=box, z_mm=(float(zc - rz), float(zc + rz)), centre_xy=(cx, cy))


def insert_calcifications(ph: Phantom, spec: LesionSpec, rng: np.random.Generator) -> PlacedLesion:
    g = ph.geometry
    px, dz, n_layers = g.pixel_mm, ph.dz_mm, ph.mu.shape[0]
    h, w = g.shape_hw
    rc = spec.size_frac * g.breast_width_px * px / 2.0
    rcz = min(rc * 0.7, g.thickness_mm / 2.0 - 4.0)
    cx, cy = _choose_centre(ph, spec, rc + 4.0, rng)
    zc = g.thickness_mm / 2.0 + rng.uniform(-1, 1) * max(g.thickness_mm / 2.0 - rcz - 4.0, 0.0)
    boxes, zs = [], []
    for _ in range(spec.n_specks):
        while True:  # uniform in the cluster ellipsoid
            v = rng.uniform(-1, 1, 3)
            if (v * v).sum() <= 1:
                break
        x, y = cx + v[0] * rc / px, cy + v[1] * rc / px
        z = zc + v[2] * rcz
        size = rng.uniform(0.6, 1.3)  # mm
        volume = np.pi / 6.0 * size**3
        sigma = max(size / 2.355, 0.45 * px)  # mm
        half = int(np.ceil(3 * sigma / px))
        ix, iy = int(x), int(y)
        gx0, gx1 = max(ix - half, 0), min(ix + half + 1, w)
        gy0, gy1 = max(iy - half, 0), min(iy + half + 1, h)
        if gx0 >= gx1 or gy0 >= gy1:
            continue
        yy, xx = np.mgrid[gy0:gy1, gx0:gx1].astype(np.float32)
        r2 = ((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2) * px * px
        g = np.exp(-r2 / (2 * sigma * sigma))
        path = volume * g / (g.sum() * px * px)  # mm of calcium, pixel-averaged: sum * px^2 = volume
        k = int(np.clip(z / dz, 0, n_layers - 1))
        ph.mu[k, gy0:gy1, gx0:gx1] += (spec.contrast - MU_FAT) * path / dz * (ph.mu[k, gy0:gy1, gx0:gx1] > 0)
        boxes.append((gx0, gy0, gx1, gy1))  # the speck's whole footprint (3 sigma)
        zs.append(z)
    if not boxes:  # cluster fell off the image: keep a small box at the centre
        boxes, zs = [(int(cx), int(cy), int(cx) + 1, int(cy) + 1)], [zc]
    b = np.array(boxes)
    box = (int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max()))
    return PlacedLesion(box=box, z_mm=(float(min(zs) - 0.5), float(max(zs) + 0.5)), centre_xy=(cx, cy))


def insert_lesion(ph: Phantom, spec: LesionSpec, rng: np.random.Generator) -> PlacedLesion:
    if spec.kind == MASS:
        return insert_mass(ph, spec, rng)
    if spec.kind == CALCIFICATION:
        return insert_calcifications(ph, spec, rng)
    raise ValueError(f"unknown lesion kind {spec.kind!r}")
