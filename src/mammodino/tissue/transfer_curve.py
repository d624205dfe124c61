"""A smaller breast-threshold step for images whose grey-level curve crowds the breast
towards the air (a darker digitiser curve).

The breast threshold sits a fixed share (``BACKGROUND_STEP``, 10 %) of the way from the air
to Otsu's level. That share is not invariant to the transfer curve: under a power curve
``v -> v ** g`` a periphery at a share ``s`` of Otsu's level moves to ``s ** g``, so with
g = 2.2 (a digitiser curve darker than optical density's) tissue between
10 % and 35 % of the way falls below the threshold and the dim periphery near the skin
line is lost: on the 66 DDSM films so rendered 23 boxes held < 95 % of the tissue.

Where the curve sits is read from the breast itself: the median of the first mask's
pixels, as a share of the way from the air to the mask's 90th percentile (the 99th was
the pectoral muscle's level on bright-muscle films, and fired on plain phantoms). On the
66 as-scanned DDSM films it lies at 0.35-0.85 (5th percentile 0.45, median 0.61), on 40
film phantoms at 0.42-0.87, on the RSNA detector images at 0.43-0.61; a darker curve
pushes it down (DDSM at g = 2.2: 0.15-0.71, median 0.43; RSNA: 0.20-0.34). Below
``CROWDED_MEDIAN`` (that 5th percentile) the curve is taken to be a power
``g = log(r) / log(CROWDED_MEDIAN)`` away from it, and the step is the one the same
periphery would have met there: ``BACKGROUND_STEP ** g``, never below ``MIN_STEP``. On
film scanned as optical density it is rare (2 of 66 films) and moves the skin line
outwards into the halo (DDSM breast IoU 0.937 -> 0.936).
"""

from __future__ import annotations

import math

import numpy as np

CROWDED_MEDIAN = 0.45  # tissue median below this share of the air-to-top range: a darker curve
TOP_PERCENTILE = 90  # "top": the 90th percentile (the 99th is the pectoral muscle or a marker)
MIN_STEP = 0.01  # the smallest step share (of the air-to-Otsu distance) this ever gives


def tissue_median_share(tissue: np.ndarray, background: float) -> float | None:
    """Median of ``tissue`` as a share of the way from ``background`` to its 90th percentile."""
    if tissue.size == 0:
        return None
    top = float(np.percentile(tissue, TOP_PERCENTILE))
    if top <= background:
        return None
    return (float(np.median(tissue)) - background) / (top - background)


def crowded_step(share: float | None, step: float) -> float | None:
    """The smaller step share for a breast whose median sits at ``share``; None when the
    curve is not crowded (or ``share`` is unknown)."""
    if share is None or not 0.0 < share < CROWDED_MEDIAN:
        return None
    power = math.log(share) / math.log(CROWDED_MEDIAN)
    return max(step ** power, MIN_STEP)
