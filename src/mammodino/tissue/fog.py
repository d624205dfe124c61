"""The slow trend of a digitised film's fog, so that the breast threshold can be one level.

Film fog is not one grey: the light box, the processor and the scanner leave a gradient
across the film, often larger than the step from the air to the dim skin line of a fatty
breast. With one threshold, the brighter end of the air then clears it and joins the
breast (a film phantom's box took in a fog corner below the breast: box IoU 0.68). A plane
fitted to the air alone (robustly: specks, labels and the breast's halo are outliers) is
the trend; segmentation subtracts it and thresholds again when it spans more than half the
threshold step. A plane, not a richer surface: the air lies on one side of the breast, and
anything curved, extrapolated under the breast, would bend the threshold at the skin line.
"""

from __future__ import annotations

import numpy as np

FIT_STEP = 4  # fit on every 4th pixel in each direction (the trend is slow)
MIN_AIR_PIXELS = 200  # fewer air samples than this: no trend is fitted
OUTLIER_MADS = 3.0  # refits drop samples further than this many MADs from the plane
REFITS = 3


def fog_trend(blurred: np.ndarray, air: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(trend, span): a float32 plane over the whole grid fitted to ``blurred`` where ``air``
    is set, less its median over the air (the air's level stays where it was), and how much
    it varies across the air (1st to 99th percentile); None when there is too little air."""
    h, w = blurred.shape
    ys, xs = np.nonzero(air[::FIT_STEP, ::FIT_STEP])
    if ys.size < MIN_AIR_PIXELS:
        return None
    ys, xs = ys * FIT_STEP, xs * FIT_STEP
    values = blurred[ys, xs].astype(np.float64)
    design = np.column_stack([np.ones(ys.size), xs / w, ys / h])
    keep = np.ones(ys.size, bool)
    coef = np.zeros(3)
    for _ in range(REFITS):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        resid = values - design @ coef
        mad = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        if mad <= 0:
            break
        keep = np.abs(resid - np.median(resid[keep])) <= OUTLIER_MADS * mad
        if keep.sum() < MIN_AIR_PIXELS:
            return None
    on_air = design[:, 1:] @ coef[1:]
    offset = float(np.median(on_air))
    span = float(np.percentile(on_air, 99) - np.percentile(on_air, 1))
    cols = (coef[1] * np.arange(w) / w - offset).astype(np.float32)
    rows = (coef[2] * np.arange(h) / h).astype(np.float32)
    return rows[:, None] + cols[None, :], span
