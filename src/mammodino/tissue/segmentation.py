"""Breast mask and box, computed on a small copy of the image so that it costs little
beside decoding.

Plain Otsu + largest component is not enough on real mammograms (IoU 0.55-0.91 against
hand-drawn boxes on RSNA, 0.75 mean against the DDSM film masks): Otsu splits dense from
fatty tissue rather than breast from air, and digitised film adds bright unexposed
borders, scanner strips, burned-in labels and tape. The recipe here:

1. Downsample to a long side of 512 (INTER_AREA) and blur lightly (sigma 1 px). A film laid
   crooked on the scanner (a straight film edge 1-12 degrees off the axes,
   :mod:`mammodino.tissue.deskew`) is turned upright for the steps below, its masks turned
   back at the end.
2. Film borders (:mod:`mammodino.tissue.film`): bright, flat lines running along a whole
   image side, and bright flat strips hugging one side, are set to the background level,
   so neither the histogram nor the largest component sees them. (A film whose air has the
   frame's grey on some sides, MIAS, is segmented on the whole square; the frame found where
   the breast meets the film's edge, :func:`~mammodino.tissue.film.find_frame`, is only
   what QC and the side judge it in.)
3. Otsu gives a coarse split; the background level is the most frequent grey level of the
   dark class, or a darker sizeable mode beyond a deep valley (a fatty breast filling the
   film outnumbers the air); a generous threshold 10% of the way from the background level to Otsu (at
   least 3 noise sigmas above it) keeps the dim periphery near the skin line. Where the
   grey-level curve crowds the breast towards the air (a darker digitiser curve), the
   step shrinks with it (:mod:`mammodino.tissue.transfer_curve`) and the mask is taken
   again, so the periphery is kept whatever curve the scanner used.
4. Small saturated flat blobs (labels, markers, tape ends) are cut out, a 5 px opening
   detaches thin bridges, thin leaks (:mod:`mammodino.tissue.tails`: a film border's
   blurred inner edge, streaks in the air) are cut where they leave the breast, the largest
   component is the breast, holes filled (burned-in labels and markers away from the
   breast are separate components and dropped). Then the fog trend
   (:mod:`mammodino.tissue.fog`): where a plane fitted to the air (not to white bars left
   out of the mask, :func:`_fog_air`) varies by more than half the threshold step, the thick patches that a threshold on the image less the plane
   leaves out (a bright fog corner) are taken out of the mask.
5. The skin line is refined by a marker watershed on the gradient magnitude: the mask
   eroded by 4 px is sure breast, everything outside the generous mask is sure air, and
   the boundary settles on the strongest edge between them. Film halos (the glow that
   scatter leaves outside the skin) are thereby not counted as breast. (On an air-framed
   film the black beyond the film is "air" too: where the breast meets the film's straight
   edge the masks are carried back out to it, :func:`_to_film_edge`.)
6. Rows at the top/bottom narrower than 20% of the widest row (a thin skin fold) are cut.
   The axillary part of an MLO view is kept: upper-outer-quadrant lesions project there.
7. Two masks: the breast's *extent* (the mask of steps 1-6, out to the foot of the skin
   ramp) gives the box, the tissue fraction, the side and what QC judges; the *tissue
   mask* (what the sampler draws crops and masks from, what the cache stores) stops at the
   skin line as annotators draw it, higher up a long soft ramp: the part of the extent
   brighter than SKIN_STEP x the threshold's step above the air. So the crop keeps the
   faint periphery (all of it on a darker curve) and the mask agrees with the DDSM
   annotation (breast IoU 0.936 -> 0.954).
8. Optional pectoral-muscle removal on MLO (:mod:`mammodino.tissue.pectoral`): the muscle,
   found on the extent, leaves the tissue mask, while the box, the tissue fraction and the
   orientation stay those of the whole breast, muscle included, so the crop still holds the
   axillary tail and whatever lies beside the muscle.

Figures (``benchmarks/segmentation.py``, per image in ``docs/ingest.md``): DDSM film masks
and RSNA hand-drawn boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from scipy import ndimage as ndi

from mammodino.errors import SkipFile
from mammodino.pixels import to_unit_float
from mammodino.tissue.deskew import scan_tilt, upright
from mammodino.tissue.film import film_borders, find_frame, label_blobs
from mammodino.tissue.fog import fog_trend
from mammodino.tissue.orientation import chest_wall_on_left
from mammodino.tissue.pectoral import pectoral_mask
from mammodino.tissue.tails import body, cut_thin_tails
from mammodino.tissue.transfer_curve import crowded_step, tissue_median_share

SEG_LONG_SIDE = 512  # segmentation resolution (long side, pixels)
MIN_SIDE = 16  # an image smaller than this on either side cannot show a breast
MIN_TISSUE_FRACTION = 0.005  # below: "no breast tissue found"
BACKGROUND_STEP = 0.10  # threshold = background + this x (Otsu - background)
AIR_MIN_SHARE = 0.15  # a darker mode of the dark class is the air when it holds this share ...
AIR_VALLEY = 0.25  # ... and a valley below this x its height separates it from the main mode
END_WIDTH_FRACTION = 0.20  # top/bottom rows narrower than this x max width are cut
SNAP_BAND = 4  # skin-line refinement searches this many pixels (at 512) inside the generous mask
SNAP_SIGMA = 2.0  # gradient smoothing for the refinement (pixels at 512)
FOG_SPAN = 0.5  # a fog trend spanning more than this x the threshold step is taken out
FOG_MARGIN = 8  # air for the fog fit: this many pixels (at 512) away from the first mask
# ... and when more than this share of that "air" lies above Otsu's split, those pixels are a
# film's white edges and bars, not air: mini-MIAS mdb274 (33 % of it: a white bar and a bright
# bottom band) had its plane tilted by 0.43, 28 times the threshold step, and the "fog" taken
# out was the lower half of the breast, QC passing. Not always: the bright end of a fog patch
# cut from the mask is fog (a dressed DDSM film, 3.6 % of its air above Otsu: without that
# air its box fell from 0.88 to 0.71 and passed QC)
FOG_BRIGHT_AIR = 0.15
FOG_PATCH_THICK = 0.5  # share of a fog-removed part within its body above which the whole part is fog
PERIPHERY_REACH = 0.1  # how far (x the long side) the dim periphery may lie from the first mask (DDSM, darker curve: <= 0.12)
MIN_PERIPHERY_GAIN = 0.02  # a crowded-curve mask must add this share of the area to replace the first
UPRIGHT_SOFT_EDGE = 2  # a scan turned upright: its film edge is blurred over this many lines by the resampling
SKIN_STEP = 2.2  # the skin line (tissue mask) lies this x the breast threshold's step above the air
MIN_SKIN_SHARE = 0.85  # ... unless that cut would take more than 15 % of the breast
PICTURE_FILL = 0.95  # a mask filling this share of its bounding box is a film picture, not a breast


@dataclass
class Segmentation:
    """The breast mask at segmentation resolution plus how it maps to the source image."""

    small_mask: np.ndarray  # uint8 (h, w), 1 = breast tissue within the skin line (the pectoral muscle out, if removed)
    scale: float  # small = source * scale
    source_shape: tuple[int, int]  # (H, W) of the source image
    picture: tuple[int, int, int, int] | None = None  # small-grid box of the film inside a padding frame, if any
    extent: np.ndarray | None = None  # the whole breast (muscle and skin ramp in), when it differs from small_mask

    @property
    def breast_small(self) -> np.ndarray:
        """The whole breast (muscle and the foot of the skin ramp included): what the box,
        the tissue fraction, the side and QC are of."""
        return self.small_mask if self.extent is None else self.extent

    @property
    def tissue_fraction(self) -> float:
        m = self.breast_small
        return float(m.mean()) if m.size else 0.0

    def chest_wall_on_left(self) -> bool:
        """Which edge the breast leans on, judged inside the picture: a film against one side
        of a padding square has the frame's black on the other side, and on the whole image
        the breast of a right film placed on the left looked like a left one (29 of 66
        dressed DDSM films so placed: wrong side, and QC's "stops short of the chest wall")."""
        m = self.breast_small
        if self.picture is not None:
            x0, y0, x1, y1 = self.picture
            m = m[y0:y1, x0:x1]
        return chest_wall_on_left(m)

    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in source pixels, x1/y1 exclusive, of the whole breast."""
        return self._to_source(breast_box(self.breast_small))

    def picture_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) in source pixels of the picture inside a constant padding frame
        (a scanned film centred on a black square); None when the image has no frame."""
        return None if self.picture is None else self._to_source(self.picture)

    def _to_source(self, small_box) -> tuple[int, int, int, int]:
        """A small-grid box in source pixels, grown outwards to whole pixels."""
        h, w = self.small_mask.shape
        H, W = self.source_shape
        x0, y0, x1, y1 = small_box
        sx, sy = W / w, H / h
        return (
            max(0, int(np.floor(x0 * sx))),
            max(0, int(np.floor(y0 * sy))),
            min(W, int(np.ceil(x1 * sx))),
            min(H, int(np.ceil(y1 * sy))),
        )

    def mask_for_region(self, region: tuple[int, int, int, int], out_size: tuple[int, int],
                        flip: bool = False, whole_breast: bool = False) -> np.ndarray:
        """uint8 mask for the source region (x0, y0, x1, y1), resampled to out_size (w, h)
        with bilinear interpolation of the small mask (smooth edges), optionally mirrored;
        ``whole_breast``: of the breast with its muscle (what QC judges the shape of)."""
        x0, y0, x1, y1 = region
        out_w, out_h = out_size
        small = self.breast_small if whole_breast else self.small_mask
        h, w = small.shape
        H, W = self.source_shape
        sx, sy = w / W, h / H
        # output pixel centre (u + 0.5) -> source x0 + (u + 0.5) * (x1 - x0) / out_w -> small
        ax = (x1 - x0) / out_w * sx
        ay = (y1 - y0) / out_h * sy
        bx = x0 * sx + 0.5 * ax - 0.5
        by = y0 * sy + 0.5 * ay - 0.5
        matrix = np.array([[ax, 0.0, bx], [0.0, ay, by]], dtype=np.float64)
        warped = cv2.warpAffine(small.astype(np.float32), matrix, (out_w, out_h),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        mask = (warped >= 0.5).astype(np.uint8)
        return mask[:, ::-1].copy() if flip else mask

    def full_mask(self, whole_breast: bool = False) -> np.ndarray:
        """The tissue mask (``whole_breast``: the extent) at the source image's resolution."""
        H, W = self.source_shape
        return self.mask_for_region((0, 0, W, H), (W, H), whole_breast=whole_breast)


def downsample(img2d: np.ndarray, long_side: int = SEG_LONG_SIDE) -> tuple[np.ndarray, float]:
    """Area-averaged float32 copy with the given long side (never upsampled)."""
    H, W = img2d.shape
    scale = min(1.0, long_side / max(H, W))
    if scale < 1.0:
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        small = cv2.resize(img2d, size, interpolation=cv2.INTER_AREA)
        scale = size[0] / W  # exact horizontal factor (vertical differs by < 1 px)
    else:
        small = img2d
    return to_unit_float(small), scale


def segment(img2d: np.ndarray, view: str | None = None, remove_pectoral_muscle: bool = False,
            long_side: int = SEG_LONG_SIDE) -> Segmentation:
    """Breast segmentation of one 2-D image (tissue bright; uint16, uint8 or float [0, 1]).

    Raises SkipFile when the image is too small or holds (almost) no tissue.
    """
    if img2d.ndim != 2:
        raise ValueError(f"segment() wants a 2-D image, got shape {img2d.shape}")
    H, W = img2d.shape
    if min(H, W) < MIN_SIDE:
        raise SkipFile(f"image too small ({H} x {W} pixels) to hold a breast")
    small, scale = downsample(img2d, long_side)
    tilt = scan_tilt(small)  # a film scanned crooked is segmented upright, then turned back
    turn = upright(small.shape, tilt) if tilt is not None else None
    work = small if turn is None else turn.image(small)
    h, w = work.shape
    frame = find_frame(work, 0 if turn is None else UPRIGHT_SOFT_EDGE)  # a film on a square: the film
    x0, y0, x1, y1 = frame.picture if frame.picture is not None else (0, 0, w, h)
    framed = frame.picture is not None and min(y1 - y0, x1 - x0) >= MIN_SIDE // 4
    picture = work[y0:y1, x0:x1] if framed else work
    found = _mask_small(picture)
    mask, tissue = found if found is not None else (np.zeros(picture.shape, dtype=np.uint8),) * 2
    fraction = float(np.count_nonzero(mask)) / picture.size  # of the film, not of its frame
    if fraction < MIN_TISSUE_FRACTION:
        raise SkipFile(f"no breast tissue found (tissue fraction {fraction:.4f})")
    if not framed and frame.air_framed is not None:
        same = tissue is mask
        mask = _to_film_edge(mask, frame.air_framed)
        tissue = mask if same else _to_film_edge(tissue, frame.air_framed)
    if remove_pectoral_muscle and (view or "").upper().startswith("MLO"):
        tissue = remove_pectoral(picture, mask, tissue)
    tissue_small = _paste(tissue, work.shape, framed, (x0, y0))
    breast_small = None if tissue is mask else _paste(mask, work.shape, framed, (x0, y0))
    picture = (x0, y0, x1, y1) if framed else frame.air_framed  # the latter judged by, not segmented in
    if turn is not None:  # back onto the scan's own grid (a frame: the box around the turned picture)
        tissue_small = turn.back(tissue_small)
        breast_small = None if breast_small is None else turn.back(breast_small)
        picture = None if picture is None else turn.box_back(picture)
    return Segmentation(tissue_small, scale, (H, W), picture, breast_small)


class BreastMasks(NamedTuple):
    """The two masks of one picture at segmentation resolution."""
    extent: np.ndarray  # the breast out to the foot of its skin ramp: box, QC, side, tissue fraction
    tissue: np.ndarray  # within the skin line (:func:`_within_skin_line`): what the sampler draws from


def _to_film_edge(mask: np.ndarray, film) -> np.ndarray:
    """``mask`` carried out to the straight edges of an air-framed film (``film``, a box on
    the mask's grid; its sides inside the image are the film's edges) on every line where
    it stops within SNAP_BAND + 1 pixels of one. Segmented on the whole square, the
    skin-line snap takes the black frame beyond the film for air and moves the boundary up
    to SNAP_BAND pixels into the film where the breast meets its edge, which is no skin line:
    2 of 119 mini-MIAS lesions, centred on the chest-wall edge, fell outside their box."""
    h, w = mask.shape
    x0, y0, x1, y1 = film
    reach = SNAP_BAND + 2
    out = mask.copy()
    sides = [(x0 > 0, out[y0:y1, x0:x0 + reach]), (x1 < w, out[y0:y1, max(x0, x1 - reach):x1][:, ::-1]),
             (y0 > 0, out[y0:y0 + reach, x0:x1].T), (y1 < h, out[max(y0, y1 - reach):y1, x0:x1][::-1].T)]
    for framed_side, band in sides:  # views into ``out``: each line runs from the film's edge inwards
        if not framed_side or band.size == 0:
            continue
        hit = band.any(axis=1)
        first = np.argmax(band > 0, axis=1)
        for i in np.flatnonzero(hit & (first > 0)):
            band[i, :first[i]] = 1
    return out


def _paste(mask: np.ndarray, shape, framed: bool, at) -> np.ndarray:
    """A mask of the picture inside a padding frame put back on the whole small grid."""
    if not framed:
        return mask
    full = np.zeros(shape, dtype=np.uint8)
    full[at[1]:at[1] + mask.shape[0], at[0]:at[0] + mask.shape[1]] = mask
    return full


def breast_mask(img2d: np.ndarray, view: str | None = None, remove_pectoral_muscle: bool = False) -> np.ndarray:
    """uint8 (H, W) breast mask of a 2-D image at its own resolution (1 = breast)."""
    return segment(img2d, view=view, remove_pectoral_muscle=remove_pectoral_muscle).full_mask()


def breast_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) bounding box of a mask, x1/y1 exclusive. Empty mask -> SkipFile."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise SkipFile("no breast tissue found (tissue fraction 0.0000)")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def tissue_fraction(mask: np.ndarray) -> float:
    return float(np.count_nonzero(mask)) / mask.size if mask.size else 0.0


# --------------------------------------------------------------------------- internals


def _mask_small(small: np.ndarray) -> BreastMasks | None:
    blurred = cv2.GaussianBlur(small, (0, 0), 1.0)
    inside = ~film_borders(blurred)
    if not inside.any():
        return None
    levels = _levels(blurred, inside)
    mask = _threshold_mask(small, blurred, inside, levels)
    if mask is not None and _is_a_picture_rectangle(mask, inside):
        # a film on a dark surround that is not one constant grey (noise, JPEG): the
        # surround was the "background" and the whole film cleared the threshold. The film
        # is now known; its own air is the background.
        film = _threshold_mask(small, blurred, inside & mask.astype(bool))
        kept = 0 if film is None else np.count_nonzero(film)
        if MIN_TISSUE_FRACTION * mask.size <= kept < 0.9 * np.count_nonzero(mask):
            mask = film  # (nothing left inside: not a film after all, the first mask stands)
            inside = inside & mask.astype(bool)
            levels = _levels(blurred, inside)
    if mask is None:
        return None
    if levels is None:
        return BreastMasks(mask, mask)
    mask = _without_fog_trend(small, blurred, inside, mask, levels)
    mask, levels = _with_dim_periphery(small, blurred, inside, mask, levels)
    return BreastMasks(mask, _within_skin_line(blurred, mask, levels))


def _within_skin_line(blurred: np.ndarray, mask: np.ndarray, levels: Levels) -> np.ndarray:
    """The breast less the foot of its skin ramp: the part of ``mask`` brighter than
    SKIN_STEP x the breast threshold's step above the air (largest component, holes filled).

    The breast threshold sits low on purpose, at the foot of the ramp where a compressed
    breast thins out to the skin, so that the box and the crop keep the faint periphery
    (on a darker digitiser curve, the whole periphery). The DDSM annotators draw the skin
    line higher up that ramp, 20-30 px inside ours on films with a long soft edge; the
    sampler's tissue mask follows them (DDSM breast IoU 0.936 -> 0.954, docs/ingest.md).
    A cut that would take more than 1 - MIN_SKIN_SHARE of the breast (a fatty breast whose
    fat lies near the threshold) is not a skin ramp: the mask stays whole."""
    level = levels.background + SKIN_STEP * (levels.threshold - levels.background)
    inner = _largest_component(mask.astype(bool) & (blurred > level))
    if inner is None or np.count_nonzero(inner) < MIN_SKIN_SHARE * np.count_nonzero(mask):
        return mask
    return inner.astype(np.uint8)


def _with_dim_periphery(small: np.ndarray, blurred: np.ndarray, inside: np.ndarray, mask: np.ndarray,
                        levels: Levels) -> tuple[np.ndarray, Levels]:
    """The mask thresholded again with the smaller step of a crowded transfer curve
    (:mod:`mammodino.tissue.transfer_curve`), kept when it is the same breast, only wider:
    it holds >= 90 % of the first mask, is no picture rectangle (a breast filling the film
    would otherwise send the film's own-air pass into the fat) and adds a periphery (at least
    MIN_PERIPHERY_GAIN of the area). Phantoms with bright dense spots on fat have a low
    median too (12 of 80 demo phantoms below 0.40) but a sharp skin line: there the second
    mask only moved a few edge pixels, a change of the training data with no gain.
    Returns the mask and the levels it was thresholded at (the skin line is placed from them)."""
    kept = (mask, levels)
    share = tissue_median_share(blurred[mask.astype(bool) & inside], levels.background)
    step = crowded_step(share, BACKGROUND_STEP)
    if step is None:
        return kept
    lower = levels.background + step * (levels.otsu - levels.background)
    if lower >= levels.threshold:
        return kept
    lower_levels = Levels(levels.background, lower, levels.otsu)
    wider = _threshold_mask(small, blurred, inside, lower_levels)
    if wider is None or _is_a_picture_rectangle(wider, inside):
        return kept
    wider = _within_reach(wider, mask)
    area = np.count_nonzero(mask)
    if np.count_nonzero(wider.astype(bool) & mask.astype(bool)) < 0.9 * area:
        return kept
    if np.count_nonzero(wider) < (1.0 + MIN_PERIPHERY_GAIN) * area:
        return kept  # a skin line moved by a pixel here and there: keep the first mask
    return _without_fog_trend(small, blurred, inside, wider, lower_levels), lower_levels


def _within_reach(wider: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``wider`` within PERIPHERY_REACH x the long side of ``mask``: a periphery lies round
    the breast; what the lower threshold reaches beyond that is the glow along a film's
    chest-wall edge, a band that runs to the film's end (a 25 %-longer DDSM film with the
    glow: the band took the box 117 px of 512 past the breast)."""
    reach = max(1, round(PERIPHERY_REACH * max(mask.shape)))
    near = cv2.dilate(mask.astype(np.uint8), _disc(reach)).astype(bool)
    kept = _largest_component(wider.astype(bool) & near)
    return wider if kept is None else kept.astype(np.uint8)


def _without_fog_trend(small: np.ndarray, blurred: np.ndarray, inside: np.ndarray, mask: np.ndarray,
                       levels: Levels) -> np.ndarray:
    """The mask less the thick patches that a threshold on the image less its fog trend
    (:mod:`mammodino.tissue.fog`) leaves out, when the trend across the air spans more than
    FOG_SPAN of the threshold step."""
    fitted = fog_trend(blurred, _fog_air(blurred, inside, mask, levels))
    if fitted is None or fitted[1] <= FOG_SPAN * (levels.threshold - levels.background):
        return mask
    trend = fitted[0]
    flat = _threshold_mask(small - trend, blurred - trend, inside)
    if flat is None or np.count_nonzero(flat) < MIN_TISSUE_FRACTION * flat.size:
        return mask
    # only a thick patch that the trend explains leaves the mask (a fog corner); elsewhere
    # the first skin line stands: on real film the air brightens towards the skin (scatter
    # halo), the plane leans with it, and the level mask moved the skin line inwards
    # (DDSM breast IoU 0.965 -> 0.876 on one film)
    removed = mask.astype(bool) & ~flat.astype(bool)
    thick = body(removed).astype(bool) & removed  # (the body's work copy may spill a pixel)
    if not thick.any():
        return mask
    # a part that is mostly thick is a fog patch and leaves whole (dressed DDSM: 84 % thick);
    # a thin ring with a thick knot is the dim periphery the plane also lifted: only the
    # knot and its rim leave (a darker-curve DDSM film: 7 % thick, and taking it whole took
    # the whole periphery, tissue in the box 0.95 -> 0.91)
    _, labels = cv2.connectedComponents(removed.astype(np.uint8), connectivity=8)
    parts = np.unique(labels[thick])
    thick_share = np.bincount(labels[thick], minlength=labels.max() + 1)[parts] / np.bincount(labels.ravel())[parts]
    patches = np.isin(labels, parts[thick_share >= FOG_PATCH_THICK])
    knots = parts[thick_share < FOG_PATCH_THICK]
    if knots.size:
        patches |= cut_thin_tails(np.isin(labels, knots)).astype(bool)
    # what the patch leaves behind can be a thin band that both thresholds kept (a film
    # border's inner edge beside the fog corner): cut as before, or it stretches the box
    kept = _largest_component(cut_thin_tails(mask.astype(bool) & ~patches))
    return mask if kept is None else kept.astype(np.uint8)


def _fog_air(blurred: np.ndarray, inside: np.ndarray, mask: np.ndarray, levels: Levels) -> np.ndarray:
    """The air the fog plane is fitted to: FOG_MARGIN pixels (at 512) clear of the mask, less
    what lies above Otsu's split when that is more than FOG_BRIGHT_AIR of it (white film
    edges and bars, not air)."""
    margin = _disc(max(2, round(FOG_MARGIN * max(blurred.shape) / SEG_LONG_SIDE)))
    air = inside & ~cv2.dilate(mask.astype(np.uint8), margin).astype(bool)
    bright = air & (blurred > levels.otsu)
    if np.count_nonzero(bright) > FOG_BRIGHT_AIR * np.count_nonzero(air):
        air &= ~bright
    return air


def _is_a_picture_rectangle(mask: np.ndarray, inside: np.ndarray) -> bool:
    """The mask fills its bounding box (a breast never does: a half-ellipse fills ~0.8 of
    it) and leaves part of the image out."""
    area = np.count_nonzero(mask)
    if area == 0:
        return False
    x0, y0, x1, y1 = breast_box(mask)
    return PICTURE_FILL * (x1 - x0) * (y1 - y0) <= area < PICTURE_FILL * np.count_nonzero(inside)


class Levels(NamedTuple):
    """Grey levels of the breast threshold."""
    background: float  # the air
    threshold: float  # breast above this
    otsu: float  # Otsu's split of the image (dense from fatty, or breast from air)


def _levels(blurred: np.ndarray, inside: np.ndarray) -> Levels | None:
    """The breast threshold's grey levels; None on a uniform image."""
    lo, hi = float(blurred[inside].min()), float(blurred[inside].max())
    if hi - lo < 0.02:  # uniform image: nothing to separate
        return None
    as8 = np.clip((blurred - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    otsu8, _ = cv2.threshold(as8[inside].reshape(1, -1), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    otsu = lo + otsu8 / 255.0 * (hi - lo)
    # background = the air's grey level, the darkest sizeable mode of the dark class (see
    # background_level); its noise from the spread below that level
    bg8 = background_level(as8[inside & (as8 <= otsu8)])
    background = lo + bg8 / 255.0 * (hi - lo)
    below = blurred[inside & (as8 <= bg8)]
    sigma = 1.4826 * float(np.median(background - below)) if below.size else 0.0
    return Levels(background, background + max(BACKGROUND_STEP * (otsu - background), 3.0 * sigma), otsu)


def _threshold_mask(small: np.ndarray, blurred: np.ndarray, inside: np.ndarray,
                    levels: Levels | None = None) -> np.ndarray | None:
    levels = levels or _levels(blurred, inside)
    if levels is None:
        return None
    above = (blurred > levels.threshold) & inside
    mask = (above & ~label_blobs(blurred, above)).astype(np.uint8)
    radius = max(1, round(2 * max(small.shape) / SEG_LONG_SIDE))
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disc(radius))
    if opened.any():
        mask = opened
    # thin leaks (a film border's blurred inner edge, streaks in the air) cut before the
    # largest component fills its holes: a leak that runs round to the breast again would
    # enclose the air between them, and the filled air is no longer thin
    generous = _largest_component(cut_thin_tails(mask))
    if generous is None:
        return None
    refined = _snap_to_skin_line(small, generous, inside)
    if refined is not None:
        generous = refined
    return _trim_ends(generous).astype(np.uint8)


def background_level(dark: np.ndarray) -> int:
    """The air's level (0-255) among the dark class's pixels: its most frequent level, not
    its median (on a fatty breast with a bright pectoral muscle the dark class is half fat),
    unless a darker mode holding AIR_MIN_SHARE of the class lies beyond a deep valley. A
    fatty breast that fills most of a film outnumbers the air, and its fat is then the most
    frequent level: taken for the air, it put the threshold above the breast (a film phantom
    lost its breast to a 2 %-high strip)."""
    if dark.size == 0:
        return 0
    hist = np.bincount(dark.ravel(), minlength=256).astype(np.float64)
    mode = int(np.argmax(hist))
    if mode == 0:
        return 0
    smooth = np.convolve(hist, np.ones(5) / 5.0, mode="same")
    split, _ = cv2.threshold(dark[dark < mode].reshape(1, -1).astype(np.uint8), 0, 1,
                             cv2.THRESH_BINARY + cv2.THRESH_OTSU) if (dark < mode).any() else (0.0, None)
    lower = int(split)
    darker = int(np.argmax(smooth[:lower + 1])) if lower > 0 else 0
    if hist[:lower + 1].sum() < AIR_MIN_SHARE * dark.size or darker >= mode - 2:
        return mode
    valley = float(smooth[darker:mode + 1].min())
    return darker if valley < AIR_VALLEY * smooth[darker] else mode


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return fill_holes(labels == largest)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (4-connected background) by one OpenCV flood fill
    from a 1-px frame: the same result at ~10x the speed (it ran twice per image, 20 % of
    the segmentation)."""
    h, w = mask.shape
    outside = np.zeros((h + 2, w + 2), np.uint8)
    outside[1:-1, 1:-1] = mask.astype(bool)
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)
    return outside[1:-1, 1:-1] != 2


def _snap_to_skin_line(small: np.ndarray, generous: np.ndarray, inside: np.ndarray) -> np.ndarray | None:
    """Marker watershed on the gradient magnitude between sure breast (the generous mask
    eroded by SNAP_BAND) and sure air (outside the generous mask dilated by 2 px): the
    boundary settles on the strongest edge in between, the skin line, not the halo."""
    scale = max(small.shape) / SEG_LONG_SIDE
    band = max(2, round(SNAP_BAND * scale))
    sure = cv2.erode(generous.astype(np.uint8), _disc(band)).astype(bool)
    if sure.sum() < 0.25 * generous.sum():
        return None  # a thin breast (cropped view): nothing to refine safely
    air = ~cv2.dilate(generous.astype(np.uint8), _disc(max(1, round(2 * scale)))).astype(bool) | ~inside
    smooth = cv2.GaussianBlur(small, (0, 0), SNAP_SIGMA * scale)
    grad = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    top = float(np.percentile(grad, 99.5))
    if top <= 0:
        return None
    relief = np.clip(grad / top * 255.0, 0, 255).astype(np.uint8)
    markers = np.zeros(small.shape, np.int16)
    markers[air] = 1
    markers[sure] = 2
    basins = ndi.watershed_ift(relief, markers)
    return _largest_component(basins == 2)


def _trim_ends(mask: np.ndarray) -> np.ndarray:
    """Cut a thin skin fold or tail at the top/bottom: rows narrower than
    END_WIDTH_FRACTION of the widest row at either end."""
    width = mask.sum(axis=1).astype(np.float64)
    widest = width.max()
    if widest <= 0:
        return mask
    keep = np.flatnonzero(width >= END_WIDTH_FRACTION * widest)
    top, bottom = int(keep[0]), int(keep[-1])
    out = mask.copy()
    out[:top] = False
    out[bottom + 1:] = False
    return out


def remove_pectoral(small: np.ndarray, mask: np.ndarray, tissue: np.ndarray | None = None) -> np.ndarray:
    """``tissue`` (default: the mask) without the pectoral muscle of an MLO view, the muscle
    found on the whole breast ``mask`` (:mod:`mammodino.tissue.pectoral`); unchanged when no
    convincing muscle edge is found."""
    tissue = mask if tissue is None else tissue
    muscle = pectoral_mask(small, mask, SEG_LONG_SIDE)
    if muscle is None:
        return tissue
    out = tissue.astype(bool) & ~muscle
    cleaned = _largest_component(out)
    return (cleaned if cleaned is not None else out).astype(np.uint8)
