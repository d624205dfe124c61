"""One per-image preparation: read image -> breast mask -> crop -> chest wall left -> resize.

``mammodino index`` writes its output to the cache; ``mammodino attention`` on a DICOM runs the
same function, so a map drawn from a DICOM shows exactly what the cache (and so training and
``embed``) sees. Geometry: the breast box grown by ``margin`` x its size on every side (or the
whole image), the long side brought to ``long_side`` (never up) with INTER_AREA, mirrored
when the chest wall is on the right; the breast mask is cut and resized with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mammodino.io.types import MammoImage
from mammodino.tissue.segmentation import Segmentation, segment


@dataclass
class PreparedImage:
    pixels: np.ndarray          # (h, w) or (Z, h, w), the reader's dtype
    mask: np.ndarray            # (h, w) uint8 tissue mask of the prepared pixels (no pectoral muscle)
    seg: Segmentation           # on the full-resolution reference plane
    region: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the source that was kept
    flipped: bool               # mirrored so the chest wall is on the left
    source_size: tuple[int, int]  # (H, W) of the source
    breast: np.ndarray          # (h, w) uint8 whole breast, muscle included (what QC judges)


def expand_box(box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow (x0, y0, x1, y1) by ``margin`` x its size on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    mx = int(round(margin * (x1 - x0)))
    my = int(round(margin * (y1 - y0)))
    return max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my)


def output_size(region, long_side: int) -> tuple[int, int]:
    """(w, h) of ``region`` with its long side brought to ``long_side`` (never enlarged)."""
    cw, ch = region[2] - region[0], region[3] - region[1]
    scale = min(1.0, long_side / max(cw, ch))
    return max(1, round(cw * scale)), max(1, round(ch * scale))


def crop_resize(img2d: np.ndarray, region, size, flip: bool) -> np.ndarray:
    """``img2d[region]`` resized to ``size`` = (w, h) with INTER_AREA, mirrored when ``flip``;
    contiguous, in the input's dtype."""
    x0, y0, x1, y1 = region
    crop = img2d[y0:y1, x0:x1]
    if (crop.shape[1], crop.shape[0]) != tuple(size):
        crop = cv2.resize(crop, tuple(size), interpolation=cv2.INTER_AREA)
    if flip:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop, dtype=img2d.dtype)


def prepare_image(image: MammoImage, long_side: int, margin: float, view: str | None = None,
                  remove_pectoral: bool = True, whole_image: bool = False,
                  slices: str = "all") -> PreparedImage:
    """The cache's view of ``image`` (``slices="middle"``: a DBT volume's middle slice only).
    ``remove_pectoral`` (index's default): the MLO muscle out of the tissue mask, not the crop.

    Raises :class:`~mammodino.errors.SkipFile` when the image holds (almost) no tissue.
    """
    pixels = image.pixels
    seg = segment(image.reference_plane(), view=view, remove_pectoral_muscle=remove_pectoral)
    flipped = not seg.chest_wall_on_left()
    H, W = pixels.shape[-2:]
    region = (0, 0, W, H) if whole_image else expand_box(seg.box(), margin, W, H)
    size = output_size(region, long_side)
    if pixels.ndim == 3 and slices == "middle":
        pixels = pixels[pixels.shape[0] // 2]
    if pixels.ndim == 2:
        out = crop_resize(pixels, region, size, flipped)
    else:
        out = np.empty((pixels.shape[0], size[1], size[0]), dtype=pixels.dtype)
        for z in range(pixels.shape[0]):
            out[z] = crop_resize(pixels[z], region, size, flipped)
    mask = seg.mask_for_region(region, size, flip=flipped)
    breast = mask if seg.extent is None else seg.mask_for_region(region, size, flip=flipped, whole_breast=True)
    return PreparedImage(out, mask, seg, region, flipped, (int(H), int(W)), breast)
