"""Cache and file integers to float intensities in [0, 1]: the one scaling every stage shares.

The cache stores uint16 (65535 = brightest tissue, MONOCHROME2 sense); 8-bit files are
0..255. Segmentation, the crop sampler, ``embed``, ``attention``, the preview and the
fine-tune inputs all see the same float for the same pixel because they all come here.
Division (not a multiply by the reciprocal) keeps the end points exact: 65535 -> 1.0.
Numpy only, so index workers do not import torch for it.
"""

from __future__ import annotations

import numpy as np

UINT16_MAX = 65535.0
UINT8_MAX = 255.0


def to_unit_float(img: np.ndarray) -> np.ndarray:
    """uint16 0..65535 / uint8 0..255 -> float32 [0, 1]; a float image is clipped to [0, 1]."""
    img = np.asarray(img)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(UINT16_MAX)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(UINT8_MAX)
    return np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)
