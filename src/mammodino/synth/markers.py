"""Burned-in annotations beside the breast: what a detector's field of view shows.

A real mammogram is not a breast box: the breast fills roughly 35-60 % of the detector and
the rest holds background, a burned-in laterality/view label and often a lead marker. Plain
DINOv2 crops land there as readily as on tissue, which is what the tissue-aware sampler is
meant to avoid; phantoms with ``detector_fov`` carry these so the ablation can show it.
"""

from __future__ import annotations

import cv2
import numpy as np


def _free(breast: np.ndarray, box: tuple[int, int, int, int], pad: int) -> bool:
    x0, y0, x1, y1 = box
    h, w = breast.shape
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    return x1 > x0 and y1 > y0 and not breast[y0:y1, x0:x1].any()


def _text(img: np.ndarray, text: str, origin: tuple[int, int], scale: float, value: int) -> None:
    """Anti-aliased text of ``value`` into a 16-bit image (OpenCV draws text on 8 bits only)."""
    layer = np.zeros(img.shape, dtype=np.uint8)
    cv2.putText(layer, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
    alpha = layer.astype(np.float32) / 255.0
    img[:] = np.round(img * (1 - alpha) + value * alpha).astype(img.dtype)


def burn_in_markers(img: np.ndarray, breast: np.ndarray, laterality: str, view: str,
                    rng: np.random.Generator) -> np.ndarray:
    """``img`` (H, W) uint16 as displayed (breast against the chest-wall side given by
    ``laterality``: L on the left) with a bright "L CC"-style label and a square lead marker
    drawn in empty background; places that would touch the breast are skipped."""
    out = img.copy()
    h, w = img.shape
    top = int(img.max()) if img.max() > 0 else 1
    chest_left = laterality == "L"
    scale = max(0.4, h / 512.0)
    text = f"{laterality} {view}"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    margin = int(0.04 * w)
    # the label in the corner away from the chest wall, top first, then bottom
    x = w - margin - tw if chest_left else margin
    for y in (margin + th, h - margin):
        if _free(breast, (x, y - th, x + tw, y + 4), margin // 2):
            _text(out, text, (x, y), scale, top)
            break
    # a lead marker (bright square with a darker letter) somewhere in the background
    side = int(0.05 * h)
    for _ in range(20):
        mx = int(rng.integers(margin, max(margin + 1, w - margin - side)))
        my = int(rng.integers(margin, max(margin + 1, h - margin - side)))
        if _free(breast, (mx, my, mx + side, my + side), margin // 2):
            out[my:my + side, mx:mx + side] = top
            _text(out, laterality, (mx + side // 5, my + 4 * side // 5), side / 32.0, int(top * 0.3))
            break
    return out
