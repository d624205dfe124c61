"""Where a cached image came from in its source: the region and the mask in source pixels.

``index`` crops the source to the breast box grown by the cache's margin (or keeps the whole
image with ``--whole-image``), resizes it, and mirrors it when the chest wall was on the
right. The contact sheet draws the cached mask over the source image, and the film
benchmark compares it with a ground-truth mask, so both need that mapping backwards; it
lives here once, next to the settings file that records the margin.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mammodino.data.cache_settings import read_settings
from mammodino.data.prepare import expand_box
from mammodino.data.qc import parse_box

DEFAULT_MARGIN = 0.02  # index's default, for caches that recorded no settings


def cache_geometry(cache_dir: str | Path) -> dict:
    """{"margin", "whole_image"} of a cache (index's defaults when it recorded none)."""
    settings = read_settings(cache_dir) or {}
    return {"margin": float(settings.get("margin", DEFAULT_MARGIN)),
            "whole_image": bool(settings.get("whole_image", False))}


def cached_region(row: dict, geometry: dict) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the source that the cached image shows; None without a box."""
    H, W = int(row["height"]), int(row["width"])
    if geometry.get("whole_image"):
        return 0, 0, W, H
    box = parse_box(row.get("breast_box"))
    return None if box is None else expand_box(box, float(geometry.get("margin", DEFAULT_MARGIN)), W, H)


def mask_on_source(row: dict, mask: np.ndarray, geometry: dict, scale: float = 1.0) -> np.ndarray:
    """The cached breast mask placed back on the source grid (uint8 0/1), at ``scale`` x the
    source size (a thumbnail needs no full-size mask)."""
    H, W = int(row["height"]), int(row["width"])
    out_h, out_w = max(1, round(H * scale)), max(1, round(W * scale))
    canvas = np.zeros((out_h, out_w), np.uint8)
    region = cached_region(row, geometry)
    if region is None or mask is None or not np.asarray(mask).size:
        return canvas
    m = np.asarray(mask, dtype=np.uint8)
    if int(row.get("flipped") or 0):
        m = m[:, ::-1]
    x0, y0, x1, y1 = (int(round(v * scale)) for v in region)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    x1, y1 = min(x1, out_w), min(y1, out_h)
    if x1 <= x0 or y1 <= y0:
        return canvas
    canvas[y0:y1, x0:x1] = cv2.resize(np.ascontiguousarray(m), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return canvas


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (x1, y1 exclusive)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0
