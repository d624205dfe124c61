"""The compressed breast: outline per view, thickness profile, pectoral muscle.

Canonical orientation here: chest wall on the LEFT (x = 0), nipple pointing right, rows top
to bottom. Right breasts are mirrored only when the image is written.

- CC: a half-ellipse (slightly squarer for large breasts) against the chest wall.
- MLO: taller; the breast runs up into the axilla (it touches the top edge at the chest wall)
  and ends at the inframammary fold below; the pectoral muscle is a triangle in the upper
  chest-wall corner with a slightly bowed edge.
- Thickness: the compressed breast is a slab of thickness T with a rounded edge (semicircular
  profile of radius T/2 measured inwards from the skin line), so the projected thickness
  falls to zero at the skin line the way it does in a real mammogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BreastShape:
    """Size of one breast, shared by its CC and MLO views (fractions of the image)."""

    half_height: float  # CC: vertical semi-axis / image rows
    depth: float  # nipple distance from the chest wall / image columns
    squareness: float  # outline exponent: 2 = ellipse, larger = squarer
    thickness_mm: float  # compressed thickness (CC); MLO is compressed a little thicker


@dataclass
class ViewGeometry:
    """Everything about one view's outline, in pixels of the (H, W) grid."""

    view: str
    shape_hw: tuple[int, int]
    pixel_mm: float
    thickness_mm: float
    inside: np.ndarray  # bool (H, W): within the skin line
    dist_mm: np.ndarray  # float32 (H, W): distance to the skin line (chest wall / axilla excluded)
    pectoral: np.ndarray  # bool (H, W): pectoral muscle (MLO), all False for CC
    nipple_xy: tuple[float, float]
    breast_width_px: float  # largest extent of the breast (for sizing lesions)


def _smooth_wobble(n: int, rng: np.random.Generator, amp: float) -> np.ndarray:
    """Low-frequency 1D modulation so no two outlines are perfect ellipses."""
    t = np.linspace(0.0, 1.0, n)
    out = np.zeros(n)
    for k in (1, 2, 3):
        out += rng.normal(0, amp / k) * np.sin(np.pi * k * t + rng.uniform(0, 2 * np.pi))
    return out


def outline_radius(view: str, shape_hw: tuple[int, int], shape: BreastShape, rng: np.random.Generator):
    """Per-row breast extent from the chest wall, ``r[y]`` in pixels (0 = no breast in that row).

    Returns ``(r, nipple_y)``.
    """
    h, w = shape_hw
    y = np.arange(h, dtype=np.float64) + 0.5
    p = shape.squareness
    a = shape.depth * w
    if view == "CC":
        cy = h * (0.5 + rng.uniform(-0.03, 0.03))
        b = shape.half_height * h
        u = np.clip(np.abs(y - cy) / b, 0.0, 1.0)
        r = a * (1.0 - u**p) ** (1.0 / p)
        nipple_y = cy
    else:
        # MLO: widest at cy, running up into the axilla (reaching the top row at x_top) and
        # curving back to the chest wall at the inframammary fold y_fold.
        cy = h * rng.uniform(0.50, 0.58)
        y_fold = h * rng.uniform(0.90, 0.97)
        x_top = w * rng.uniform(0.28, 0.40)
        a = a * rng.uniform(0.95, 1.03)
        below = np.clip((y - cy) / (y_fold - cy), 0.0, 1.0)
        r_low = a * (1.0 - below**p) ** (1.0 / p)
        above = np.clip((cy - y) / cy, 0.0, 1.0)
        r_up = x_top + (a - x_top) * (1.0 - above**2.2) ** (1.0 / 2.2)
        r = np.where(y < cy, r_up, r_low)
        nipple_y = cy
    r = r * (1.0 + _smooth_wobble(h, rng, 0.015))
    r[r < 1.0] = 0.0
    return r, float(nipple_y)


def pectoral_mask(shape_hw: tuple[int, int], r_top: float, rng: np.random.Generator) -> np.ndarray:
    """Triangle in the upper chest-wall corner with a gently bowed edge (MLO only)."""
    h, w = shape_hw
    pw = min(w * rng.uniform(0.18, 0.30), 0.85 * r_top)
    ph = h * rng.uniform(0.35, 0.60)
    bow = rng.uniform(0.75, 1.15)  # <1 convex, >1 concave edge
    yy = (np.arange(h, dtype=np.float64) + 0.5)[:, None]
    xx = (np.arange(w, dtype=np.float64) + 0.5)[None, :]
    edge = pw * np.clip(1.0 - yy / ph, 0.0, 1.0) ** bow
    return xx < edge


def _distance_to_skin(inside: np.ndarray, view: str, pixel_mm: float) -> np.ndarray:
    """Distance (mm) from each inside pixel to the skin line, where the chest wall (left edge)
    and, for MLO, the axilla (top edge) are not skin: the body continues past them."""
    pad = 32
    m = inside.astype(np.uint8)
    left = np.repeat(m[:, :1], pad, axis=1)
    m = np.concatenate([left, m], axis=1)
    if view == "MLO":
        top = np.repeat(m[:1, :], pad, axis=0)
        m = np.concatenate([top, m], axis=0)
    d = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    if view == "MLO":
        d = d[pad:]
    d = d[:, pad:]
    return np.maximum(d - 0.5, 0.0).astype(np.float32) * pixel_mm


def view_geometry(
    view: str,
    shape_hw: tuple[int, int],
    pixel_mm: float,
    shape: BreastShape,
    rng: np.random.Generator,
) -> ViewGeometry:
    """Outline, skin distance, pectoral muscle and thickness for one view."""
    h, w = shape_hw
    r, nipple_y = outline_radius(view, shape_hw, shape, rng)
    xx = (np.arange(w, dtype=np.float64) + 0.5)[None, :]
    inside = xx < r[:, None]
    dist = _distance_to_skin(inside, view, pixel_mm)
    if view == "MLO":
        pect = pectoral_mask(shape_hw, float(r[0]), rng) & inside
        thickness = shape.thickness_mm * rng.uniform(1.02, 1.12)
    else:
        pect = np.zeros_like(inside)
        thickness = shape.thickness_mm
    rows = np.nonzero(r > 0)[0]
    extent = max(float(r.max()), float(rows[-1] - rows[0] + 1) if rows.size else 0.0)
    return ViewGeometry(
        view=view,
        shape_hw=shape_hw,
        pixel_mm=pixel_mm,
        thickness_mm=float(thickness),
        inside=inside,
        dist_mm=dist,
        pectoral=pect,
        nipple_xy=(float(r.max()), nipple_y),
        breast_width_px=extent,
    )


def thickness_profile(dist_mm: np.ndarray, thickness_mm: float) -> np.ndarray:
    """Compressed thickness (mm) at each pixel: T inside, semicircular fall-off of radius T/2
    over the last T/2 mm before the skin line, 0 outside."""
    radius = thickness_mm / 2.0
    u = np.clip(dist_mm / radius, 0.0, 1.0)
    t = thickness_mm * np.sqrt(np.clip(1.0 - (1.0 - u) ** 2, 0.0, 1.0))
    return t.astype(np.float32)


def layer_occupancy(thick: np.ndarray, thickness_mm: float, n_layers: int) -> np.ndarray:
    """Fraction of each z layer (``n_layers`` equal layers spanning [0, T]) filled by a slab of
    local thickness ``thick`` centred at T/2: exact partial volumes, so sum(occ) * dz = thick.

    Returns float32 (n_layers, H, W).
    """
    dz = thickness_mm / n_layers
    z0 = (np.arange(n_layers, dtype=np.float32) * dz)[:, None, None]
    zc = thickness_mm / 2.0
    lo = np.maximum(z0, zc - thick[None] / 2.0)
    hi = np.minimum(z0 + dz, zc + thick[None] / 2.0)
    return np.clip((hi - lo) / dz, 0.0, 1.0).astype(np.float32)
