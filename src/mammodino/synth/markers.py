"""Burned-in annotations beside the breast: what a detector's field of view shows.

A real mammogram is not a breast box: the breast fills roughly 35-60 % of the detector and
the rest holds background, a burned-in laterality/view label and often a lead marker. Plain
DINOv2 crops land there as readily as on tissue, which is what the tissue-aware sampler is
meant to avoid; phantoms with ``detector_fov`` carry these so the ablation can show it.
Digitised film (:func:`film_scan`, ``synth --film``) adds what a film scanner shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _free(breast: np.ndarray, box: tuple[int, int, int, int], pad: int) -> bool:
    x0, y0, x1, y1 = box
    h, w = breast.shape
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    return x1 > x0 and y1 > y0 and not breast[y0:y1, x0:x1].any()


def _text(img: np.ndarray, text: str, origin: tuple[int, int], scale: float, value: float) -> None:
    """Anti-aliased text of ``value`` into a 16-bit or float image (OpenCV draws text on 8
    bits only)."""
    layer = np.zeros(img.shape, dtype=np.uint8)
    cv2.putText(layer, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
    alpha = layer.astype(np.float32) / 255.0
    blended = img * (1 - alpha) + np.float32(value) * alpha
    img[:] = np.round(blended).astype(img.dtype) if img.dtype.kind in "ui" else blended


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


# --------------------------------------------------------------------------- digitised film
#
# A scanned film (CBIS-DDSM, DDSM, MIAS, INbreast's older cousins) is not a detector image:
# the unexposed film edges scan bright on one to three sides, the scanner leaves a saturated
# or black strip at an edge, the air is a grey fog with row streaks, and the technologist's
# label ("LCC", "R MLO"), lead markers and tape sit on the film. These are exactly what a
# plain threshold takes for the breast, so the film phantoms carry them with a ground-truth
# breast mask.

FILM_SIDES = ("top", "bottom", "chest", "far")


@dataclass(frozen=True)
class FilmLayout:
    """Unexposed border widths in pixels, in the chest-wall-left frame (``chest`` is the
    chest-wall side, ``far`` the nipple side); the breast is rendered in what is left."""

    top: int = 0
    bottom: int = 0
    chest: int = 0
    far: int = 0

    def inner_shape(self, shape_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = shape_hw
        return h - self.top - self.bottom, w - self.chest - self.far


def film_layout(shape_hw: tuple[int, int], rng: np.random.Generator) -> FilmLayout:
    """Bright borders on 1-3 sides: top/bottom 3-9 % of the rows, the nipple side 4-12 % of
    the columns, the chest-wall side (rarer, and thin) 1-3 %."""
    h, w = shape_hw
    n = int(rng.integers(1, 4))
    sides = rng.choice(len(FILM_SIDES), size=n, replace=False, p=[0.3, 0.25, 0.1, 0.35])
    widths = {}
    for i in sorted(int(s) for s in sides):
        side = FILM_SIDES[i]
        lo, hi, n_px = {"top": (0.03, 0.09, h), "bottom": (0.03, 0.09, h), "chest": (0.01, 0.03, w),
                        "far": (0.04, 0.12, w)}[side]
        widths[side] = max(2, int(round(float(rng.uniform(lo, hi)) * n_px)))
    return FilmLayout(**widths)


def _ragged(n: int, rng: np.random.Generator, amp: float) -> np.ndarray:
    """A slowly wandering edge offset (pixels) along a border of length n."""
    t = np.linspace(0, 1, n)
    out = np.zeros(n)
    for k in (1, 2, 5):
        out += rng.normal(0, amp / k) * np.sin(np.pi * k * t + rng.uniform(0, 2 * np.pi))
    return out


def _border_mask(shape_hw, layout: FilmLayout, rng: np.random.Generator) -> np.ndarray:
    h, w = shape_hw
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), bool)
    if layout.top:
        m |= yy < layout.top + _ragged(w, rng, 0.15 * layout.top)[None, :]
    if layout.bottom:
        m |= yy >= h - layout.bottom - _ragged(w, rng, 0.15 * layout.bottom)[None, :]
    if layout.chest:
        m |= xx < layout.chest + _ragged(h, rng, 0.15 * layout.chest)[:, None]
    if layout.far:
        m |= xx >= w - layout.far - _ragged(h, rng, 0.15 * layout.far)[:, None]
    return m


def film_scan(inner: np.ndarray, inner_breast: np.ndarray, layout: FilmLayout, laterality: str, view: str,
              rng: np.random.Generator, bits: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A digitised film, as displayed (a right breast mirrored: chest wall on the right).

    ``inner``: float [0, 1] breast image (0 = air) of ``layout.inner_shape``, chest wall on
    the left; ``inner_breast`` its mask. Returns (uint16 film in [0, 2**bits - 1],
    MONOCHROME2, bright = dense; bool ground-truth breast mask of the film's shape). Labels
    are drawn after mirroring, so their text reads the right way round."""
    film, breast, border = _exposed_film(inner, inner_breast, layout, rng)
    chest_left = laterality == "L"
    if not chest_left:
        film, breast, border = film[:, ::-1].copy(), breast[:, ::-1].copy(), border[:, ::-1].copy()
    left, right = (layout.chest, layout.far) if chest_left else (layout.far, layout.chest)
    free = breast | border
    top_value = float(rng.uniform(0.9, 1.0))
    free = _place_label(film, free, layout, laterality, view, (left, right), top_value, rng)
    _place_markers(film, free, layout, laterality, (left, right), top_value, rng)
    _add_tape(film, breast, chest_left, rng)
    _scanner_edge_and_noise(film, breast, rng)
    top = (1 << bits) - 1
    return np.rint(np.clip(film, 0.0, 1.0) * top).astype(np.uint16), breast


def crooked_scan(film: np.ndarray, breast: np.ndarray, box, degrees: float, bed: float = 0.0):
    """The film laid ``degrees`` crooked (counter-clockwise) on a scanner bed of grey ``bed``,
    on a canvas large enough for all of it (the bed shows in the corners): returns (film,
    breast mask, the bounding box of ``box`` turned, or None)."""
    from mammodino.tissue.deskew import upright  # the same canvas the segmentation turns back on

    turn = upright(film.shape, -degrees)  # undoing a tilt of -degrees turns by +degrees
    mask = turn.onto(breast.astype(np.uint8), 0, nearest=True) > 0
    return turn.onto(film, bed), mask, (turn.box_onto(box) if box else None)


@dataclass(frozen=True)
class DressedFilm:
    """A breast image put through the film scanner (:func:`dress_as_film`): the film, its
    breast mask, and where the given image landed on it (borders around it, mirrored for a
    right breast), so that truths drawn on the given image follow."""

    film: np.ndarray  # uint16, MONOCHROME2
    breast: np.ndarray  # bool, the film's grid
    left: int
    top: int
    mirrored: bool

    def box(self, box) -> tuple[int, int, int, int]:
        """An (x0, y0, x1, y1) box of the given image on the film."""
        x0, y0, x1, y1 = box[0] + self.left, box[1] + self.top, box[2] + self.left, box[3] + self.top
        w = self.film.shape[1]
        return (w - x1, y0, w - x0, y1) if self.mirrored else (x0, y0, x1, y1)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A mask of the given image on the film, where the film still shows breast."""
        x0, y0, x1, y1 = self.box((0, 0, mask.shape[1], mask.shape[0]))
        out = np.zeros(self.breast.shape, bool)
        out[y0:y1, x0:x1] = mask[:, ::-1] if self.mirrored else mask
        return out & self.breast


def dress_as_film(inner: np.ndarray, inner_breast: np.ndarray, laterality: str, view: str,
                  rng: np.random.Generator, bits: int = 16) -> DressedFilm:
    """A given breast image (a real film's breast with its annotation, say) through the film
    scanner: a layout drawn for it, then :func:`film_scan`. ``inner``: float [0, 1], chest
    wall on the left."""
    layout = film_layout(inner.shape, rng)
    film, breast = film_scan(inner, inner_breast, layout, laterality, view, rng, bits=bits)
    return DressedFilm(film, breast, layout.chest, layout.top, laterality != "L")


@dataclass(frozen=True)
class PaddedSquare:
    """Where an image goes when an older film collection ships it (MIAS-like): scaled to the
    square's side along its long side and centred on black (or, mini-MIAS, against its left
    or right side), 8 bits."""

    side: int
    scale: float
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def fit(cls, shape_hw: tuple[int, int], side: int = 1024, align: str = "centre") -> PaddedSquare:
        h, w = shape_hw
        scale = side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        left = {"centre": (side - nw) // 2, "left": 0, "right": side - nw}[align]
        return cls(side, scale, left, (side - nh) // 2, nw, nh)

    def image(self, img: np.ndarray) -> np.ndarray:
        """uint8 square of a float [0, 1] image."""
        out = np.zeros((self.side, self.side), np.uint8)
        small = cv2.resize(img.astype(np.float64), (self.width, self.height), interpolation=cv2.INTER_AREA)
        out[self.top:self.top + self.height, self.left:self.left + self.width] = np.clip(small * 255 + 0.5, 0, 255)
        return out

    def mask(self, mask: np.ndarray) -> np.ndarray:
        out = np.zeros((self.side, self.side), bool)
        out[self.top:self.top + self.height, self.left:self.left + self.width] = cv2.resize(
            mask.astype(np.uint8), (self.width, self.height), interpolation=cv2.INTER_NEAREST) > 0
        return out

    def box(self, box) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        s = self.scale
        return (round(self.left + x0 * s), round(self.top + y0 * s), round(self.left + x1 * s),
                round(self.top + y1 * s))


def _exposed_film(inner: np.ndarray, inner_breast: np.ndarray, layout: FilmLayout, rng: np.random.Generator):
    """Exposed film (fog with a gentle gradient, the breast on top) inside bright unexposed
    borders with a soft ragged edge, chest wall left; returns ``(film, breast, border)``."""
    ih, iw = inner.shape
    h, w = ih + layout.top + layout.bottom, iw + layout.chest + layout.far
    breast = np.zeros((h, w), bool)
    breast[layout.top:layout.top + ih, layout.chest:layout.chest + iw] = inner_breast
    fog = float(rng.uniform(0.03, 0.10))
    gy = np.linspace(-1, 1, h)[:, None] * float(rng.uniform(-0.02, 0.02))
    gx = np.linspace(-1, 1, w)[None, :] * float(rng.uniform(-0.02, 0.02))
    film = np.full((h, w), fog, np.float32) + (gy + gx).astype(np.float32)
    gain = float(rng.uniform(0.75, 0.95))
    film[layout.top:layout.top + ih, layout.chest:layout.chest + iw] += (1 - fog) * gain * inner
    border = _border_mask((h, w), layout, rng)
    border_level = float(rng.uniform(0.82, 0.97))
    soft = cv2.GaussianBlur(border.astype(np.float32), (0, 0), max(1.0, 0.004 * max(h, w)))
    film = film * (1 - soft) + soft * (border_level + rng.normal(0, 0.01, (h, 1)).astype(np.float32))
    breast &= ~border
    return film, breast, border


def _place_label(film: np.ndarray, free: np.ndarray, layout: FilmLayout, laterality: str, view: str, margins,
                 top_value: float, rng: np.random.Generator) -> np.ndarray:
    """The technologist's label ("LCC", "R MLO") in the background away from the chest wall,
    where it fits; returns ``free`` less the label's box."""
    h, w = film.shape
    left, right = margins
    chest_left = laterality == "L"
    scale = max(0.45, h / 700.0)
    side_word = "LEFT" if laterality == "L" else "RIGHT"
    text = str(rng.choice([f"{laterality}{view}", f"{laterality} {view}", f"{side_word} {view}"]))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    x_lo, x_hi = (w // 2, w - right - tw - 4) if chest_left else (left + 4, w // 2 - tw)
    y_lo, y_hi = layout.top + th + 4, h - layout.bottom - 4
    for _ in range(30):
        if x_hi <= x_lo or y_hi <= y_lo:
            break
        x, y = int(rng.integers(x_lo, x_hi)), int(rng.integers(y_lo, y_hi))
        if _free(free, (x, y - th, x + tw, y + 4), max(2, th // 3)):
            _text(film, text, (x, y), scale, top_value)
            return free | _box_mask((h, w), (x, y - th, x + tw, y + 4))
    return free


def _place_markers(film: np.ndarray, free: np.ndarray, layout: FilmLayout, laterality: str, margins,
                   top_value: float, rng: np.random.Generator) -> None:
    """Lead markers: one or two bright squares with a darker letter, where they fit."""
    h, w = film.shape
    left, right = margins
    side = max(6, int(0.04 * h))
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(30):
            if w - right - side - 2 <= left + 2 or h - layout.bottom - side - 2 <= layout.top + 2:
                break
            mx = int(rng.integers(left + 2, w - right - side - 2))
            my = int(rng.integers(layout.top + 2, h - layout.bottom - side - 2))
            if _free(free, (mx, my, mx + side, my + side), max(2, side // 3)):
                film[my:my + side, mx:mx + side] = top_value
                _text(film, laterality, (mx + side // 5, my + 4 * side // 5), side / 32.0, 0.3)
                free = free | _box_mask((h, w), (mx, my, mx + side, my + side))
                break


def _add_tape(film: np.ndarray, breast: np.ndarray, chest_left: bool, rng: np.random.Generator) -> None:
    """Tape: a translucent, slightly tilted strip on the nipple side; about a quarter of the
    strips that would reach over the skin line are kept there, on the breast."""
    h, w = film.shape
    if rng.random() < 0.7:
        tape = np.zeros((h, w), np.uint8)
        cx = float(rng.uniform(0.6, 0.9) if chest_left else rng.uniform(0.1, 0.4)) * w
        cy = float(rng.uniform(0.08, 0.25) if rng.random() < 0.5 else rng.uniform(0.75, 0.92)) * h
        size = (float(rng.uniform(0.12, 0.22)) * w, float(rng.uniform(0.03, 0.06)) * h)
        corners = cv2.boxPoints(((cx, cy), size, float(rng.uniform(-25, 25)))).astype(np.int32)
        cv2.fillConvexPoly(tape, corners, 1)
        over = tape.astype(bool)
        on_breast = bool((over & breast).any())
        if not on_breast or rng.random() < 0.25:
            texture = rng.normal(0, 0.01, (h, w)).astype(np.float32)
            film += over * (float(rng.uniform(0.10, 0.25)) + texture)


def _scanner_edge_and_noise(film: np.ndarray, breast: np.ndarray, rng: np.random.Generator) -> None:
    """The scanner's edge strip (saturated or black, at one image edge; not breast) and its
    noise: row streaks and grain."""
    h, w = film.shape
    strip = max(1, int(round(float(rng.uniform(0.004, 0.012)) * max(h, w))))
    edge = int(rng.integers(4))
    value = 1.0 if rng.random() < 0.6 else 0.0
    sl = (np.s_[:strip, :], np.s_[h - strip:, :], np.s_[:, :strip], np.s_[:, w - strip:])[edge]
    film[sl] = value
    breast[sl] = False
    film += rng.normal(0, float(rng.uniform(0.002, 0.006)), (h, 1)).astype(np.float32)
    film += rng.normal(0, float(rng.uniform(0.003, 0.01)), (h, w)).astype(np.float32)


def _box_mask(shape_hw, box) -> np.ndarray:
    m = np.zeros(shape_hw, bool)
    x0, y0, x1, y1 = box
    m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return m
