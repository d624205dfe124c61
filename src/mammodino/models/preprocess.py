"""The one input normalisation every part uses: trainer, ``embed``, ``attention``, exports.

An encoder sees a single-channel float image: the cache's uint16 pixels divided by 65535
(so [0, 1], tissue bright, chest wall on the left), then ``(x - MEAN) / STD``. MEAN 0.5 and
STD 0.25 map [0, 1] to [-2, 2], close to the range ImageNet-normalised images have, which
is what imported DINOv2 weights expect (their RGB filters are summed into one channel).

Example:
    >>> x = from_uint16(np.array([[0, 65535]], dtype=np.uint16))   # float32 [0, 1]
    >>> normalize(x)
    array([[-2.,  2.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
import torch

from mammodino.pixels import UINT16_MAX, to_unit_float

MEAN = 0.5
STD = 0.25


def from_uint16(pixels):
    """uint16 cache pixels (numpy or tensor) -> float32 in [0, 1] (``mammodino.pixels``)."""
    if isinstance(pixels, torch.Tensor):
        return pixels.to(torch.float32) / UINT16_MAX
    return to_unit_float(np.asarray(pixels, dtype=np.uint16))


def normalize(x):
    """[0, 1] intensities -> model input: ``(x - MEAN) / STD`` (numpy or tensor, any shape)."""
    if isinstance(x, torch.Tensor):
        return (x - MEAN) / STD
    return ((np.asarray(x, dtype=np.float32) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


def describe() -> dict:
    """The preprocessing, as written into an exported encoder's config.json."""
    return {
        "channels": 1,
        "input": "float32 in [0, 1]: cache uint16 pixels / 65535 (MONOCHROME2, tissue bright, chest wall left)",
        "mean": MEAN,
        "std": STD,
        "formula": "(x - mean) / std",
        "size": "height and width multiples of patch_size",
    }
