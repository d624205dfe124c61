"""Masks, label maps and lesion crops that sit beside the mammograms of a public dataset.

Archives as they are downloaded keep annotations in the same tree as the images: CBIS-DDSM
puts each lesion's binary "ROI mask images" and "cropped images" DICOMs next to the "full
mammogram images" (same Modality, same SOP class), and DDSM-derived PNG sets keep their
tissue label maps in a sibling folder (``../shared/data/ddsm_tissue``: 64 / 128 / 192 / 255).
Indexed as mammograms, they passed every check (a label map has a breast-shaped region on
a dark background) and pretraining would learn flat grey shapes. Two cheap tests:

- the header: a SeriesDescription that names a mask, a segmentation or a cropped ROI;
- the pixels: a label map is a few flat regions. Binned into 64 grey-level bins, the pixels
  outside the commonest bin (the background) lie almost all in 8 bins, over the whole range
  and over the range up to the 95th percentile alike (the lower of the two is the figure):
  1.000 on the DDSM label maps, 0.961-0.986 on JPEG copies of them at quality 90 and
  0.924-0.970 at 50 (ringing around each region); a radiograph's tissue spreads over many:
  0.244-0.607 on the 66 DDSM films (0.422-0.652 with an implant drawn in), 0.260-0.458 on
  RSNA, 0.198-0.818 on 320 of our FFDM, DBT and film phantoms. The clipped range matters:
  over the whole range alone, a fatty demo phantom whose bright mass stretched the range had
  its tissue in 8 bins (0.92) and was skipped as a mask.
  An image with at most 16 distinct grey levels is a label map whatever its bins say.
- and, when the bins say label map, the regions must be flat: a label map's pixels mostly
  sit in a 3 x 3 neighbourhood of one grey level (DDSM label maps >= 0.95 of the
  non-background pixels, their JPEG copies at quality 90 / 50 >= 0.80 / 0.79), a radiograph's
  texture leaves few (DDSM films <= 0.29: label text and saturated markers; MIAS <= 0.04;
  INbreast 0). Three of 410 INbreast PNGs (fatty CC views whose processed tissue spans ~12
  grey levels, one with a mass) had 92-95 % of it in 8 bins and were skipped as masks.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

# SeriesDescription of an annotation rather than a whole image (CBIS-DDSM: "ROI mask images",
# "cropped images"; other archives: "... mask", "segmentation")
ANNOTATION_SERIES = re.compile(r"\b(roi\b.*\bmasks?|masks?|cropped|crops?|segmentations?)\b", re.IGNORECASE)
MAX_LABEL_LEVELS = 16  # an image with at most this many distinct grey levels is a label map
BINS = 64  # grey-level bins over the image's range
TOP_BINS = 8  # ... or one whose pixels outside its commonest bin lie LABEL_SHARE in TOP_BINS bins
LABEL_SHARE = 0.90
# ... over the whole range and also over the range up to this percentile: a small bright
# region (a mass, a clip, a marker) stretching the range of a fatty breast put its tissue in
# 8 bins (a demo phantom: 92 %); a label map's levels stay in few bins either way
CLIP_PERCENTILE = 95.0
FLAT_SHARE = 0.6  # ... and at least this share of its non-background pixels in flat 3 x 3 neighbourhoods
FLAT_LONG_SIDE = 2048  # the flatness is judged on a strided copy this long at most
SAMPLES = 250_000  # pixels looked at (a regular subsample): the levels of a label map show at once


def annotation_series_reason(series_description: str) -> str | None:
    """Why a DICOM whose SeriesDescription names an annotation is not a mammogram, or None."""
    text = str(series_description or "").strip()
    match = ANNOTATION_SERIES.search(text)
    if match is None:
        return None
    kind = re.sub(r"^roi\b", "ROI", match.group(1).lower())
    return f"an annotation, not a whole mammogram (SeriesDescription names a {kind} image)"


def label_image_reason(pixels: np.ndarray) -> str | None:
    """Why ``pixels`` (2-D image or 3-D volume) look like a mask or label map, or None."""
    flat = pixels.reshape(-1)
    if flat.size == 0:
        return None
    sample = flat[:: max(1, flat.size // SAMPLES)]
    levels = np.unique(sample).size
    if levels < 2:
        return None  # a blank image: "no breast tissue found" says it better
    share = min(_top_bin_share(sample, float(sample.min()), float(sample.max())),
                _top_bin_share(sample, float(sample.min()), float(np.percentile(sample, CLIP_PERCENTILE))))
    if levels <= MAX_LABEL_LEVELS:
        return (f"a mask or label map, not a mammogram ({levels} grey levels; {share:.0%} of the "
                f"non-background pixels in {TOP_BINS} of {BINS} grey-level bins)")
    if share >= LABEL_SHARE:
        flat_share = _flat_share(pixels)
        if flat_share >= FLAT_SHARE:
            return (f"a mask or label map, not a mammogram ({levels} grey levels; {share:.0%} of the "
                    f"non-background pixels in {TOP_BINS} of {BINS} grey-level bins, {flat_share:.0%} "
                    f"in flat regions)")
    return None


def _flat_share(pixels: np.ndarray) -> float:
    """Share of the non-background pixels (further than 1 % of the range from the
    commonest level) whose 3 x 3 neighbourhood holds one grey level; on a copy of long side
    <= FLAT_LONG_SIDE taken by striding (a label region stays flat, tissue textured)."""
    img = pixels if pixels.ndim == 2 else pixels[pixels.shape[0] // 2]
    step = max(1, -(-max(img.shape) // FLAT_LONG_SIDE))
    img = np.ascontiguousarray(img[::step, ::step])
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        img = img.astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(img, kernel).astype(np.float64) - cv2.erode(img, kernel)
    values, counts = np.unique(img, return_counts=True)
    background = float(values[int(np.argmax(counts))])
    tol = 0.01 * float(values[-1] - values[0])
    inside = np.abs(img.astype(np.float64) - background) > tol
    if not inside.any():
        return 1.0
    return float((spread[inside] == 0).mean())


def _top_bin_share(sample: np.ndarray, lo: float, hi: float) -> float:
    """Share of the pixels outside the commonest of BINS bins over [lo, hi] (values above hi
    in the top bin) that lie in the TOP_BINS fullest of the others; 1 when nothing is left."""
    if hi <= lo:
        hi = float(sample.max())
    if hi <= lo:
        return 1.0
    bins = np.clip(((sample - lo) * (BINS / (hi - lo))).astype(np.int64), 0, BINS - 1)
    counts = np.bincount(bins, minlength=BINS)
    rest = np.sort(np.delete(counts, int(np.argmax(counts))))[::-1]
    return float(rest[:TOP_BINS].sum()) / max(1, int(rest.sum()))
