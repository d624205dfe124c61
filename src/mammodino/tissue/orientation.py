"""Which edge holds the chest wall (the canonical orientation is chest wall on the LEFT).

In the DICOM display convention a left breast is shown with the chest wall on the left edge
and the nipple pointing right, a right breast mirrored. So when no tag or label table
says which breast it is, the edge the breast leans against tells us: left edge -> "L".
The cache mirrors every image whose breast leans on the right edge and records
``flipped`` in the manifest.

This module works on a breast mask only, so that segmentation can use it (pectoral
removal needs the chest-wall side) without an import cycle.
"""

from __future__ import annotations

import numpy as np


def chest_wall_on_left(mask: np.ndarray) -> bool:
    """True when the breast leans on the left image edge.

    Compares how much of the mask lies in the outer 5% columns on each side (the chest wall
    is a long contact with one edge); falls back to the mask's centre of mass when neither
    edge is touched (a breast floating in the middle, e.g. a cropped image)."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2 or not mask.any():
        return True
    w = mask.shape[1]
    band = max(1, int(round(0.05 * w)))
    left = int(mask[:, :band].sum())
    right = int(mask[:, w - band:].sum())
    if left != right and max(left, right) > 0:
        return left > right
    cols = np.flatnonzero(mask.any(axis=0))
    weights = mask.sum(axis=0)[cols]
    centre = float((cols * weights).sum() / weights.sum())
    return centre <= (w - 1) / 2


def laterality_from_mask(mask: np.ndarray) -> str:
    """"L" when the chest wall is on the left edge, else "R" (standard display convention)."""
    return "L" if chest_wall_on_left(mask) else "R"
