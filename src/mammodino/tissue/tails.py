"""The body of a breast mask and the thin tails that leak from it.

On digitised film the breast threshold can follow the blurred inner edge of a bright film
border, or scanner streaks in the air, as a band a few pixels wide that joins the breast:
the largest component then runs along the border and the box stretches over half the film
(film phantoms: 9 of 40 boxes). A breast has no such part: its thinnest parts (nipple,
axillary tail, the skin fold at the ends) are short or wide. Opening the mask by a disc of
TAIL_RADIUS x its long side keeps the body and drops every part thinner than the disc;
QC's ``tail`` check compares the box of that body with the box of the mask, and
segmentation cuts what lies further than the disc's radius from the body.

The cut takes the image's outside for air. OpenCV's default border takes it for mask, and
then a band on the image edge itself only had to be one radius wide to be body: the glow
along a digitised film's chest-wall edge, which the threshold follows above and below the
breast as such a band, stretched 9 of 20 mini-DDSM boxes to one or both ends of the film (and 5
of 322 MIAS boxes). QC's body keeps the default: a breast cut by the image edge is body
there, and only a tail that segmentation left is flagged.
"""

from __future__ import annotations

import cv2
import numpy as np

TAIL_RADIUS = 0.03  # opening radius / long side of the mask: removes thin tails, keeps the breast
WORK_LONG_SIDE = 256  # the opening runs on a copy this size (its cost grows with the disc's area)


def body(mask: np.ndarray) -> np.ndarray:
    """uint8 mask (same shape) of the mask's body: opened by a disc of TAIL_RADIUS x its long
    side (computed on a copy of long side WORK_LONG_SIDE, brought back by nearest neighbour)."""
    m = _as_uint8(mask)
    core, r, scale = _opened_work_copy(m)
    return _back(core, m.shape, scale)


def cut_thin_tails(mask: np.ndarray) -> np.ndarray:
    """The mask without the parts further than one disc radius from its body: a thin leak
    is cut where it leaves the breast, while the breast's own contour, nipple and thin
    ends (all within a radius of the body) are kept pixel for pixel. Unchanged when the
    opening leaves nothing (a mask thinner than the disc everywhere: a cropped view)."""
    m = _as_uint8(mask)
    core, r, scale = _opened_work_copy(m, outside_is_mask=False)
    if not core.any():
        return m
    return m & _back(cv2.dilate(core, _disc(r + 1)), m.shape, scale)


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(mask) > 0, dtype=np.uint8)


def _opened_work_copy(m: np.ndarray, outside_is_mask: bool = True) -> tuple[np.ndarray, int, float]:
    """(opened copy, disc radius on the copy, copy scale). ``outside_is_mask``: OpenCV's
    default border, beyond which the mask is taken to go on; else the outside is air."""
    small, scale = _work_copy(m)
    r = max(1, round(TAIL_RADIUS * max(small.shape)))
    border = {} if outside_is_mask else {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}
    return cv2.morphologyEx(small, cv2.MORPH_OPEN, _disc(r), **border), r, scale


def _back(small: np.ndarray, shape: tuple[int, ...], scale: float) -> np.ndarray:
    if scale >= 1.0:
        return small
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _work_copy(m: np.ndarray) -> tuple[np.ndarray, float]:
    scale = min(1.0, WORK_LONG_SIDE / max(m.shape))
    if scale >= 1.0:
        return m, 1.0
    size = (max(1, round(m.shape[1] * scale)), max(1, round(m.shape[0] * scale)))
    return (cv2.resize(m * np.uint8(255), size, interpolation=cv2.INTER_AREA) >= 128).astype(np.uint8), scale


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
