"""Small known-answer film images for the segmentation tests."""

import numpy as np

# the breast's box in every fatty_film: rows 40..460, columns 0..250 (x0, y0, x1, y1)
FATTY_FILM_BOX = (0, 40, 250, 461)


def fatty_film(fog_rise: float, seed: int = 0) -> np.ndarray:
    """A dim fatty breast (grey 0.015 on a 0.06 scale, 12-bit-in-16 film) that fills most of
    a 500 x 300 film, on air at 0.004 whose fog brightens by ``fog_rise`` down the film; a
    bright MLO pectoral muscle (Otsu splits it from air and fat) and a lead marker set the
    top of the range. The breast's box is FATTY_FILM_BOX."""
    rng = np.random.default_rng(seed)
    h, w = 500, 300
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.004 + fog_rise * (yy / h) + rng.normal(0, 0.0003, (h, w))
    breast = ((yy - 250) / 210.0) ** 2 + (xx / 250.0) ** 2 <= 1
    img[breast] = 0.015 + 0.002 * rng.random(breast.sum())
    muscle = breast & (xx < 160 - 0.5 * (yy - 40))
    img[muscle] = 0.045 + 0.003 * rng.random(muscle.sum())
    img[440:470, 270:290] = 0.06  # lead marker
    return np.clip(img, 0, 1).astype(np.float32)
