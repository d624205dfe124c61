"""The same real film as other scanners, archives and technologists would have left it.

Dressing a film (:mod:`mammodino.synth.markers`) adds what lies *around* a breast; these
variants change how the breast itself was recorded: the grey-level mapping of another
digitiser (a darker or brighter transfer curve, 12 bits in a 16-bit word, a lifted air
level, the glow along the chest-wall edge), another resolution, the other breast side or
an upside-down scan, a film laid crooked on the scanner, a view cropped through the breast,
a ruler beside it and a label touching it. Each takes an 8-bit film and
its label image (DDSM tissue labels: 64 = background) and returns both, transformed alike,
so that a segmentation can be scored on every variant against the same annotation
(``benchmarks/segmentation_variants.py``, ``tests/tissue/test_ddsm_variants.py``).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from mammodino.tissue import orientation
from mammodino.tissue.deskew import Upright, upright

BACKGROUND_LABEL = 64  # DDSM tissue labels: 64 background, 128 fat, 192 fibroglandular, 255 pectoral

Variant = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _chest_wall_on_left(lab: np.ndarray) -> bool:
    """The side the annotated breast leans on (the labels know the breast; the film may not)."""
    return orientation.chest_wall_on_left(lab != BACKGROUND_LABEL)


def _gamma(power: float) -> Variant:
    def apply(img, lab):
        return (255.0 * (img / 255.0) ** power + 0.5).astype(np.uint8), lab
    return apply


def _upscaled_16bit(img, lab):
    """A CBIS-DDSM-sized film (4,600 x 2,800), 16 bits."""
    size = (2800, 4600)
    big = cv2.resize(img.astype(np.uint16) * 257, size, interpolation=cv2.INTER_CUBIC)
    return big, cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)


def _bits12(img, lab):
    """12 significant bits stored in a 16-bit word (values 0-4080)."""
    return img.astype(np.uint16) * 16, lab


def _grey_air(img, lab):
    """A fogged film: the air at grey level ~60 instead of black, contrast reduced alike."""
    return (60.0 + img * (195.0 / 255.0)).astype(np.uint8), lab


def _mirrored(img, lab):
    return img[:, ::-1].copy(), lab[:, ::-1].copy()


def _upside_down(img, lab):
    return img[::-1, ::-1].copy(), lab[::-1, ::-1].copy()


def _noisy(img, lab):
    rng = np.random.default_rng(0)
    return np.clip(img + rng.normal(0.0, 12.0, img.shape), 0, 255).astype(np.uint8), lab


def _bright_frame(img, lab):
    """Unexposed film on all four sides (6 % top and bottom, 8 % left and right)."""
    h, w = img.shape
    ty, tx = round(0.0625 * h), round(0.083 * w)
    out = np.full((h + 2 * ty, w + 2 * tx), 235, np.uint8)
    out[ty:ty + h, tx:tx + w] = img
    labels = np.full(out.shape, BACKGROUND_LABEL, np.uint8)
    labels[ty:ty + h, tx:tx + w] = lab
    return out, labels


def _bright_chest_band(img, lab):
    """A bright band 8 % wide outside the chest-wall edge (the film holder's shadow)."""
    h, w = img.shape
    band = np.full((h, round(0.08 * w)), 240, np.uint8)
    back = np.full(band.shape, BACKGROUND_LABEL, np.uint8)
    if _chest_wall_on_left(lab):
        return np.hstack([band, img]), np.hstack([back, lab])
    return np.hstack([img, band]), np.hstack([lab, back])


def _chest_wall_glow(img, lab):
    """The glow along a digitised film's chest-wall edge, on a film a quarter longer than
    the breast (air below it, as on most film scans). Measured on six DDSM film scans
    (mini-DDSM, 8-bit): the air rises from ~7 to ~43 at the edge, 3/4 of the way to Otsu's
    split, along the whole height, falling off as 0.55 exp(-d / 0.0084 L) + 0.45 exp(-d /
    0.037 L) of that (d from the edge, L the long side). The breast threshold followed it
    above and below the breast as a band ~5 % of the long side wide, and the box ran to the
    film's ends."""
    h, w = img.shape
    pad = round(0.25 * h)
    background = lab == BACKGROUND_LABEL
    air = float(np.median(img[background])) if background.any() else float(img.min())
    otsu, _ = cv2.threshold(img.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    film = np.vstack([img, np.full((pad, w), round(air), np.uint8)])
    labels = np.vstack([lab, np.full((pad, w), BACKGROUND_LABEL, np.uint8)])
    d = np.arange(w, dtype=np.float64)  # distance from the chest-wall edge
    if not _chest_wall_on_left(lab):
        d = d[::-1]
    L = float(max(film.shape))
    glow = air + 0.75 * max(float(otsu) - air, 0.0) * (0.55 * np.exp(-d / (0.0084 * L)) + 0.45 * np.exp(-d / (0.037 * L)))
    return np.maximum(film, glow.round()[None, :]).astype(np.uint8), labels


def _ruler(img, lab):
    """A bright ruler with ticks along the air side, 5 % of the height from either end."""
    out = img.copy()
    h, w = img.shape
    left = _chest_wall_on_left(lab)
    x0 = w - round(0.06 * w) if left else round(0.02 * w)
    bar = max(4, round(0.037 * w))
    y0, y1 = round(0.05 * h), h - round(0.05 * h)
    out[y0:y1, x0:x0 + bar] = 250
    tick = slice(x0 - bar // 2, x0) if left else slice(x0 + bar, x0 + bar + bar // 2)
    for y in range(y0, y1, max(2, h // 48)):
        out[y:y + 2, tick] = 250
    return out, lab


def _tilted_ruler(img, lab):
    """A bright ruler 80 % of the height long laid 7 degrees off the vertical in the air: a
    long straight flat-sided edge that is no film edge (the crooked-scan check must not
    turn the film by it)."""
    out = img.copy()
    h, w = img.shape
    x = 0.85 * w if _chest_wall_on_left(lab) else 0.15 * w
    bar = cv2.boxPoints(((x, h / 2.0), (max(4.0, 0.035 * w), 0.8 * h), 7.0))
    cv2.fillPoly(out, [np.round(bar).astype(np.int32)], 250)
    return out, lab


def _label_touching(img, lab):
    """A burned-in view label whose first letter touches the skin line at a third of the height."""
    out = img.copy()
    h, w = img.shape
    y = h // 3
    row = np.flatnonzero(lab[y] != BACKGROUND_LABEL)
    if row.size == 0:
        return out, lab
    scale = h / 600.0
    (tw, _), _ = cv2.getTextSize("RMLO", cv2.FONT_HERSHEY_SIMPLEX, scale, max(2, round(2.5 * scale)))
    x = row.max() + 2 if _chest_wall_on_left(lab) else max(0, row.min() - tw - 2)
    cv2.putText(out, "RMLO", (int(x), y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(2, round(2.5 * scale)))
    return out, lab


def _cropped_top(img, lab):
    """The upper quarter cut off: the breast and the muscle run into the top edge."""
    cut = img.shape[0] // 4
    return img[cut:].copy(), lab[cut:].copy()


def _cropped_anterior(img, lab):
    """The nipple side cut off through the breast (15 % of its depth): the breast then
    touches three image edges and fills the image - QC's business, not a segmentation error."""
    w = img.shape[1]
    cols = np.flatnonzero((lab != BACKGROUND_LABEL).any(axis=0))
    if cols.size == 0:
        return img, lab
    if _chest_wall_on_left(lab):
        cut = int(0.85 * (cols.max() + 1))
        return img[:, :cut].copy(), lab[:, :cut].copy()
    cut = int(cols.min() + 0.15 * (w - cols.min()))
    return img[:, cut:].copy(), lab[:, cut:].copy()


def _tilted(degrees: float, bed: int, framed: bool, whole: bool = True) -> Variant:
    """The film laid ``degrees`` crooked (counter-clockwise) on a scanner bed of grey ``bed``
    that shows in the corners, optionally with its unexposed border (a tilted wedge).
    ``whole``: the scan holds the whole film; else a scan of the film's own size, which
    cuts the film's corners off."""
    def apply(img, lab):
        if framed:
            img, lab = _bright_frame(img, lab)
        turn = upright(img.shape, -degrees)  # whole: the canvas the segmentation turns back on
        if not whole:  # the same turn about the centre, onto the film's own size
            h, w = img.shape
            turn = Upright(cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0), (w, h), (h, w))
        return turn.onto(img, bed), turn.onto(lab, BACKGROUND_LABEL, nearest=True)
    return apply


VARIANTS: dict[str, Variant] = {
    "as scanned": lambda img, lab: (img, lab),
    "mirrored": _mirrored,
    "upside down": _upside_down,
    "4600x2800, 16-bit": _upscaled_16bit,
    "12 bits in 16": _bits12,
    "grey air": _grey_air,
    "scanner noise": _noisy,
    "bright frame": _bright_frame,
    "bright chest band": _bright_chest_band,
    "chest-wall glow": _chest_wall_glow,
    "ruler": _ruler,
    "tilted ruler": _tilted_ruler,
    "label touching": _label_touching,
    "cropped top": _cropped_top,
    "cropped through the breast": _cropped_anterior,
    "tilted 3 deg, bright frame, dark bed": _tilted(3.0, 0, True),
    "tilted -4 deg, bright frame, dark bed": _tilted(-4.0, 0, True),
    "tilted -5 deg, light bed": _tilted(-5.0, 235, False),
    "tilted 8 deg, dark bed": _tilted(8.0, 0, False),
    "tilted 4 deg, bright frame, corners cut": _tilted(4.0, 0, True, whole=False),
    "darker curve (gamma 2.2)": _gamma(2.2),
    "brighter curve (gamma 0.45)": _gamma(0.45),
}

# Films laid crooked on the scanner (segmented upright, :mod:`mammodino.tissue.deskew`);
# with the film's corners cut off by the scan, its border has gaps that the border walk does
# not peel: the box then takes in part of the border (all tissue still inside).
TILTED = tuple(v for v in VARIANTS if v.startswith("tilted ") and "deg" in v)
TILTED_CORNERS_CUT = tuple(v for v in TILTED if v.endswith("corners cut"))

# Variants that change the picture, not the breast's extent: the box must still hold the breast.
# ("cropped through the breast" fills the image by design; the two transfer curves are where
# the threshold is known to move, see README "Segmentation on other grey-level curves"; a
# crooked scan is resampled twice, turned and turned back, and its box misses the annotation's
# by a hair more: 0.75-0.80 IoU on 3 of 264 films, tissue all inside, so it has its own bar.)
SAME_BREAST = tuple(v for v in VARIANTS if v not in (
    "cropped through the breast", "darker curve (gamma 2.2)", "brighter curve (gamma 0.45)", *TILTED))


def variant(name: str, img: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(film, labels) of the named variant; KeyError names the known variants."""
    try:
        fn = VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown film variant {name!r}; known: {', '.join(VARIANTS)}") from None
    if img.dtype != np.uint8 or img.shape != lab.shape:
        raise ValueError(f"film variants want an 8-bit film and a label image of its shape, got "
                         f"{img.dtype} {img.shape} and {lab.shape}")
    return fn(img, lab)
