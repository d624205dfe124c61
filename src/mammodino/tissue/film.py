"""Digitised-film artefacts that a breast threshold would take for tissue.

A scanned film (DDSM, CBIS-DDSM, MIAS, INbreast's older cousins) shows, besides the breast:
- unexposed film along one to four sides: bright, flat, touching the image edge and running
  along it (sometimes only part of a side, or tilted);
- scanner edge strips: a few bright or noisy lines at the very edge;
- burned-in labels ("LCC", "R MLO"), lead markers, tape: small, saturated, flat blobs,
  sometimes touching the breast.

Everything here works on the small float32 copy used for segmentation (long side ~512) and
returns a boolean map of what is not breast. The tests are geometric (flat, bright,
elongated along an edge, small) rather than tuned grey levels, so that they carry over
from film to film. The breast itself is never flat: it has texture and falls off towards
the skin, and it touches at most the chest-wall side over most of its length.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

BORDER_MAX_DEPTH = 0.30  # a film border never reaches deeper than this x the image side
EDGE_SKIP = 8  # lines (at 512) of scanner edge that may lie between the image edge and a border
LINE_BRIGHT_FRACTION = 0.85  # a border line: this much of it bright ...
LINE_MAX_SPREAD = 0.12  # ... and flat: 10-90 % spread below this x the dynamic range
STRIP_MIN_ELONGATION = 3.0  # a partial border strip: length along its side >= this x depth
BLOB_MAX_AREA = 0.006  # labels and markers: at most this fraction of the image
FLAT_STD = 0.006  # local standard deviation (x dynamic range) below which a patch is flat
SATURATED = 0.04  # within this x dynamic range of the brightest pixel: unexposed film, print
# a padding frame line: every pixel within this of the frame's grey level (x full scale).
# Not exact equality: a JPEG copy's black frame rings by 1-2 of 255 grey levels along the
# film's edge. Not a tolerance learnt from the corners' noise either: flat film corners with
# scanner grain then passed for a frame (2 of 8 small film phantoms framed or emptied).
PAD_TOL = 0.01
# A JPEG copy's frame rings: beside a bright unexposed film border, by up to 4 of 255 grey
# levels over a few pixels of each line next to the film. With every pixel within PAD_TOL the
# walk stopped a few lines short, the first "picture" lines were then mostly frame, and 3 of
# 40 JPEG film phantoms lost their frame (their box took in the film's bright border: box
# IoU 0.48). So when the exact walk finds no frame, a second walk accepts a line with at
# least PAD_LINE_SHARE of it within PAD_TOL and none of it further than PAD_RING_MAX. Only
# second: run first, it walked on into a lossless film's own dark air (8-bit air quantised
# to 0-10) and lost 2 of 40 PNG frames that the exact walk finds.
PAD_LINE_SHARE = 0.98
PAD_RING_MAX = 0.04
# padding never takes more than this x the image side from one edge: a narrow film padded
# into a square against one of its sides (mini-MIAS: films about 0.45x as wide as the
# 1024-px square) leaves more than half of the width to the frame on one side
PAD_MAX_DEPTH = 0.8
# The picture's first lines beside a frame: at least this share of one of its first
# PAD_EDGE_LINES lines differs from the frame's grey level. Measured (512-px grid): padded
# 8-bit film scans 0.47-1.0 (film air quantised to 0 touches the frame on some); the clipped
# air around FFDM (11 RSNA) and DDSM breasts 0.00-0.13 (only the breast's tip or a label).
PAD_EDGE_FILLED = 0.3
PAD_EDGE_LINES = 3
# ... and at least one framed side is a straight film edge: its first line >= this share
# non-frame (padded film scans: 0.99-1.0 on at least one side; a smooth breast contour against
# perfectly constant air, as in our phantoms, 0.04-0.24 on every side, rising line by line).
# 0.8, not 0.9: on real mini-MIAS squares a small breast leaves its film's own black air below
# it on the chest-wall edge, and the first line of a film edge halved onto the 512 grid is
# part frame: 0.84-0.88 on 4 of 322, which had no frame, were judged against the black square
# ("stops short of the chest wall" on good boxes) and segmented with it as their air. Below
# it: a faint straight line in the clipped air of three RSNA detector images (0.29, 0.62,
# 0.71), which is no film edge; counting the second line as well framed one of them on it.
PAD_STRAIGHT = 0.8
# A scanner's dark edge strip can lie between the frame and the film: noisy near-black lines
# (grain over black: 2-20 % of each line a few grey levels above the frame) that neither walk
# peels. Up to EDGE_SKIP such lines (every pixel within PAD_RING_MAX of the frame, at most
# PAD_STRIP_SHARE of the line beyond PAD_TOL) are taken as frame before the picture's edge is
# judged, when a straight film edge follows them (see _past_scanner_strips). Without this,
# real DDSM breasts dressed as padded film scans lost their frame on 5 of 66 (the box then
# measured against the black square: "chest wall" suspects).
PAD_STRIP_SHARE = 0.5
PAD_ONE_LINE_STRIP = 0.1  # a single such line: at most this share of it off the frame's grey
PAD_LONE_SHARE = 0.01  # a frame line may hold this share of lone pixels off its grey (dust, a scratch across it)


def dynamic_range(blurred: np.ndarray) -> tuple[float, float]:
    """Robust (low, high) grey levels: 0.5th and 99.8th percentiles."""
    lo, hi = np.percentile(blurred, (0.5, 99.8))
    return float(lo), float(max(hi, lo + 1e-6))


def local_std(blurred: np.ndarray, size: int = 7) -> np.ndarray:
    mean = cv2.blur(blurred, (size, size))
    sq = cv2.blur(blurred * blurred, (size, size))
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


def border_lines(blurred: np.ndarray) -> np.ndarray:
    """Boolean map of whole lines (rows/columns from each image edge inwards) that are
    bright and flat along their full length: unexposed film and scanner strips on a whole
    side. Walks inwards from every edge while lines qualify (allowing the blurred step
    at the inner edge of the border), never deeper than BORDER_MAX_DEPTH."""
    lo, hi = dynamic_range(blurred)
    span = hi - lo
    bright = lo + 0.5 * span
    h, w = blurred.shape
    out = np.zeros((h, w), bool)
    sides = (
        ("top", lambda i: blurred[i, :], h),
        ("bottom", lambda i: blurred[h - 1 - i, :], h),
        ("left", lambda i: blurred[:, i], w),
        ("right", lambda i: blurred[:, w - 1 - i], w),
    )
    def border_line(values) -> bool:
        p10, p90 = np.percentile(values, (10, 90))
        return bool(np.mean(values > bright) >= LINE_BRIGHT_FRACTION and (p90 - p10) <= LINE_MAX_SPREAD * span)

    for side, line, n in sides:
        limit = int(BORDER_MAX_DEPTH * n)
        # a scanner's edge lines (dark or noisy) may come before the border: start past them
        start = next((i for i in range(min(EDGE_SKIP, limit)) if border_line(line(i))), None)
        if start is None:
            continue
        depth = start + 1  # line(start) qualified already
        while depth < limit and border_line(line(depth)):
            depth += 1
        depth = min(limit, depth + 2)  # the blurred inner edge of the border
        if side == "top":
            out[:depth, :] = True
        elif side == "bottom":
            out[h - depth:, :] = True
        elif side == "left":
            out[:, :depth] = True
        else:
            out[:, w - depth:] = True
    return out


def border_strips(blurred: np.ndarray) -> np.ndarray:
    """Saturated flat regions touching one image side, long along it (>= 40 % of the side,
    >= 3x their depth) with a straight inner edge: a partial or tilted film border. A
    clipped pectoral muscle also touches the edge, but it tapers (a triangle), so its depth
    along the side is not constant and it is left alone."""
    flat = _saturated_and_flat(blurred, 7)
    flat = cv2.morphologyEx(flat.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=8)
    h, w = blurred.shape
    out = np.zeros((h, w), bool)
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        if area < 0.002 * h * w:
            continue
        comp = labels[y:y + bh, x:x + bw] == k
        touches = {"top": y == 0, "bottom": y + bh == h, "left": x == 0, "right": x + bw == w}
        for side, hit in touches.items():
            if not hit:
                continue
            along = side in ("top", "bottom")
            length, depth = (bw, bh) if along else (bh, bw)
            side_len = w if along else h
            if depth > BORDER_MAX_DEPTH * (h if along else w) or length < max(STRIP_MIN_ELONGATION * depth,
                                                                               0.4 * side_len):
                continue
            per_line = comp.sum(axis=0 if along else 1).astype(np.float64)
            per_line = per_line[per_line > 0]
            if per_line.std() <= 0.3 * per_line.mean() + 1.0:
                out[y:y + bh, x:x + bw] |= comp
                break
    if out.any():
        out = cv2.dilate(out.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return out


def label_blobs(blurred: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Small saturated flat blobs that sit in the air: burned-in text, lead markers, tape
    ends. ``above`` is the breast threshold mask. A blob is cut out when at least 40 % of
    a 4 px ring around it is air, which holds for a label touching the skin line but not
    for a clipped patch of pectoral muscle or dense tissue (surrounded by tissue). Holes
    are filled afterwards, so a clip or a calcification inside the breast is kept."""
    cand = _saturated_and_flat(blurred, 5).astype(np.uint8)
    cand = cv2.dilate(cand, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    h, w = blurred.shape
    out = np.zeros((h, w), bool)
    ring_kernel = np.ones((9, 9), np.uint8)
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        if area > BLOB_MAX_AREA * h * w:
            continue
        x0, y0, x1, y1 = max(0, x - 5), max(0, y - 5), min(w, x + bw + 5), min(h, y + bh + 5)
        blob = (labels[y0:y1, x0:x1] == k).astype(np.uint8)
        ring = cv2.dilate(blob, ring_kernel).astype(bool) & ~blob.astype(bool)
        if ring.any() and np.mean(~above[y0:y1, x0:x1][ring]) >= 0.4:
            out[y0:y1, x0:x1] |= cv2.dilate(blob, np.ones((5, 5), np.uint8)).astype(bool)
    return out


def _saturated_and_flat(blurred: np.ndarray, size: int) -> np.ndarray:
    """Pixels at the top of the grey scale whose neighbourhood is flat: unexposed film and
    printed labels are saturated; tissue, even the pectoral muscle, has texture."""
    lo, hi = dynamic_range(blurred)
    span = hi - lo
    top = float(blurred.max())
    return (blurred >= top - SATURATED * span) & (local_std(blurred, size) < FLAT_STD * span)


class Frame(NamedTuple):
    """What one walk round the image's edges found."""
    picture: tuple[int, int, int, int] | None  # the film inside a constant frame: segmented in and judged by
    air_framed: tuple[int, int, int, int] | None  # no such picture, but a film whose air has the frame's grey
    # on some sides (MIAS): judged by only (QC's chest-wall gap, the side), see :func:`find_frame`


def find_frame(small: np.ndarray, soft_edge: int = 0) -> Frame:
    """The padding frame of a film centred on a constant square, in one walk per rule (exact
    grey, then JPEG ringing): the picture of :func:`padding_box` and, where there is none, the
    *air-framed* box of a film whose own air has the frame's grey on some sides (MIAS: a film
    centred on black, its air digitised to 0 as well): the frame is peeled where the breast
    meets the film's straight, filled edge, and the air sides go back to the image's edge. No
    air-framed box when no side is such an edge (clipped air around a detector breast meets
    every framed side with the breast's curved tip). It is a box to judge the film by, not to
    segment in: segmented inside it, the film's edge became the picture's edge, where the
    opening no longer cut a bright bottom border from the breast (docs/qc.md)."""
    air = None
    for rule in (_all_within_tolerance, _within_jpeg_ringing):
        picture, air_box = _framed_picture(small, rule, soft_edge)
        if picture is not None:
            return Frame(picture, None)
        air = air or air_box
    return Frame(None, air)


def padding_box(small: np.ndarray, soft_edge: int = 0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the picture inside a constant frame: collections of scanned film
    (MIAS and its kin) centre each film on a black (or white) square, so the film's bright
    unexposed border sits inside the image, not on its edge, where the border tests look.
    A frame line has one grey level along its whole length, and the picture's first lines
    beside it are largely picture: a straight edge. Air clipped to one grey level around
    an FFDM breast is not a frame (its first non-constant lines are mostly still air), so
    detector images keep their whole field. The whole image when there is no frame.
    ``soft_edge``: the straight film edge may lie that many lines inside the frame (a scan
    turned upright by :mod:`mammodino.tissue.deskew` was resampled: its edge is blurred)."""
    picture = find_frame(small, soft_edge).picture
    return picture if picture is not None else (0, 0, small.shape[1], small.shape[0])


def _all_within_tolerance(line: np.ndarray, value: float) -> bool:
    return _within_but_lone_pixels(np.abs(line - value), PAD_TOL)


def _within_jpeg_ringing(line: np.ndarray, value: float) -> bool:
    if line.size == 0:  # everything peeled already: as the exact rule (all() of nothing)
        return True
    dev = np.abs(line - value)
    return float(np.mean(dev <= PAD_TOL)) >= PAD_LINE_SHARE and _within_but_lone_pixels(dev, PAD_RING_MAX)


def _within_but_lone_pixels(dev: np.ndarray, tol: float) -> bool:
    """Every pixel of a frame line within ``tol`` of the frame's grey, but for a few lone
    ones (at most PAD_LONE_SHARE of the line, each with neighbours within it): dust or a
    scratch across the black square, one pixel of each line it crosses, is not the film,
    which meets a frame line with a run of pixels (mini-MIAS mdb003: 0.07 in a frame of
    0-0.01; mdb031 and 7 more of the 322: a scratch of 0.02 beside the chest wall stopped
    the walk there, the breast was judged against the black beyond and read as the other
    side). A grainy scanner strip has many such pixels and stays a picture line (without
    the cap, 10 of 66 dressed DDSM films framed inside their strips, one box 0.88 -> 0.84)."""
    off = dev > tol
    n_off = int(np.count_nonzero(off))
    if n_off == 0:
        return True
    if n_off > PAD_LONE_SHARE * dev.size or dev.size < 3:
        return False
    i = np.flatnonzero(off)
    before = np.where(i > 0, dev[np.maximum(i - 1, 0)], 0.0)
    after = np.where(i < dev.size - 1, dev[np.minimum(i + 1, dev.size - 1)], 0.0)
    return bool(((before <= tol) & (after <= tol)).all())


def _framed_picture(small: np.ndarray, frame_line, soft_edge: int = 0):
    """(picture, air-framed box) found by peeling lines that ``frame_line`` accepts from the
    edges: the picture None when there is no frame or the picture beside it is not a straight
    edge; the air-framed box (:func:`find_frame`) None when no framed side is air."""
    h, w = small.shape
    corner = {float(v) for v in (small[0, 0], small[0, -1], small[-1, 0], small[-1, -1])}
    x0, y0, x1, y1 = 0, 0, w, h

    # the grey level(s) that framed each side: the picture's edge is judged against its own
    # frame's grey, not every corner's (a film against one side of its square has its own
    # border in two corners; its far-side border at that grey looked like frame, 4 of 66
    # dressed DDSM squares lost their frame)
    peeled = {"top": set(), "bottom": set(), "left": set(), "right": set()}
    for value in corner:
        before = (x0, y0, x1, y1)
        while y0 < PAD_MAX_DEPTH * h and frame_line(small[y0, x0:x1], value):
            y0 += 1
        while h - y1 < PAD_MAX_DEPTH * h and frame_line(small[y1 - 1, x0:x1], value):
            y1 -= 1
        while x0 < PAD_MAX_DEPTH * w and frame_line(small[y0:y1, x0], value):
            x0 += 1
        while w - x1 < PAD_MAX_DEPTH * w and frame_line(small[y0:y1, x1 - 1], value):
            x1 -= 1
        for side, moved in zip(("left", "top", "right", "bottom"), (a != b for a, b in zip(before, (x0, y0, x1, y1)))):
            if moved:
                peeled[side].add(value)
    if (x0, y0, x1, y1) == (0, 0, w, h) or x1 - x0 < 2 or y1 - y0 < 2:
        return None, None
    box = (x0, y0, x1, y1)
    if max(x0, y0, w - x1, h - y1) <= EDGE_SKIP:
        # only a few constant lines at the edges (a scanner's strips on an unpadded scan):
        # no strip skipped, no side given back, judged against every corner's grey as
        # before; judged against each side's own, a 600 x 360 film phantom was framed on its
        # strip and its bright border joined the breast (0.980 -> 0.922), and not framing
        # such strips at all cost more (a DDSM film dressed as DICOM kept only 0.878 of its
        # breast inside the box)
        return _framed_if_straight(box, _edge_shares(small, box, {}, corner, soft_edge)), None
    box = _past_scanner_strips(small, box, peeled, corner)
    shares = _edge_shares(small, box, peeled, corner, soft_edge)
    # beside a padding frame, a side peeled by a few constant lines only, next to which the
    # picture is no straight edge, is the film's own border or strip touching the image
    # edge: given back to the picture (a film against one side of its square, its bright
    # bottom border constant on one row, lost its frame: 1 of 66 dressed DDSM squares)
    depth = {"left": box[0], "top": box[1], "right": w - box[2], "bottom": h - box[3]}
    given_back = [side for side, (filled, _) in shares.items() if filled < PAD_EDGE_FILLED and depth[side] <= EDGE_SKIP]
    picture = _given_back(box, given_back, w, h) if given_back else box
    picture = _framed_if_straight(picture, _edge_shares(small, picture, peeled, corner, soft_edge)
                                  if given_back else shares)
    return picture, (None if picture is not None else _air_framed(small, box, shares, given_back, peeled, corner))


def _air_framed(small: np.ndarray, box, shares, given_back, peeled, corner) -> tuple[int, int, int, int] | None:
    """The air-framed box of :func:`find_frame` from a walk's deep frame: the air sides (deep,
    their first picture lines still air) given back when a framed side is the film's edge,
    filled and straight within its first PAD_EDGE_LINES lines (resampled to the 512 grid, its
    first line is part frame); then every side still framed must be filled."""
    h, w = small.shape
    air = [side for side, (filled, _) in shares.items() if filled < PAD_EDGE_FILLED and side not in given_back]
    if not air or not any(filled >= PAD_STRAIGHT for filled, _ in shares.values()):
        return None
    box = _given_back(box, given_back + air, w, h)
    shares = _edge_shares(small, box, peeled, corner)
    return box if shares and all(filled >= PAD_EDGE_FILLED for filled, _ in shares.values()) else None


def _given_back(box, sides, w: int, h: int) -> tuple[int, int, int, int]:
    """``box`` with the named sides moved back out to the image's edges."""
    return (0 if "left" in sides else box[0], 0 if "top" in sides else box[1],
            w if "right" in sides else box[2], h if "bottom" in sides else box[3])


def _framed_if_straight(box, shares: dict[str, tuple[float, float]]) -> tuple[int, int, int, int] | None:
    """``box`` when every framed side's picture edge is filled and one is straight, else None."""
    if not shares:
        return None
    if any(filled < PAD_EDGE_FILLED for filled, _ in shares.values()):
        return None  # a ragged edge: background around the breast, not a frame
    if not any(first >= PAD_STRAIGHT for _, first in shares.values()):
        return None  # no side is a straight picture edge: a curved contour on flat air
    return box


def _edge_shares(small: np.ndarray, box, peeled, corner, soft_edge: int = 0) -> dict[str, tuple[float, float]]:
    """For each framed side: (the largest share of its first PAD_EDGE_LINES picture lines
    that is off its frame's grey, that share on the line against the frame, or the largest
    on its first ``soft_edge + 1`` lines). A side's frame grey is ``peeled[side]``, every
    corner's where that is not known."""
    h, w = small.shape
    x0, y0, x1, y1 = box
    k = PAD_EDGE_LINES
    # the first k lines inside the frame on each side, the one against the frame first
    edges = {"top": small[y0:y0 + k, x0:x1], "bottom": small[max(y0, y1 - k):y1, x0:x1][::-1],
             "left": small[y0:y1, x0:x0 + k].T, "right": small[y0:y1, max(x0, x1 - k):x1].T[::-1]}
    framed = {"top": y0 > 0, "bottom": y1 < h, "left": x0 > 0, "right": x1 < w}
    out = {}
    for side, lines in edges.items():
        if framed[side]:
            shares = [min(float(np.mean(np.abs(line - v) > PAD_TOL)) for v in peeled.get(side) or corner)
                      for line in lines]
            out[side] = (max(shares), max(shares[:soft_edge + 1]))
    return out


def _past_scanner_strips(small: np.ndarray, box, peeled, corner) -> tuple[int, int, int, int]:
    """The picture box of a padding frame (some side deeper than EDGE_SKIP lines: the caller
    checks) moved past up to EDGE_SKIP noisy near-frame lines on a framed side when a
    straight film edge (>= PAD_STRAIGHT of the next line off the frame's grey) follows them.
    (Skipping without a deep frame framed 3 of 66 dressed DDSM DICOM films on their scanner
    strip, 2 boxes worse.) The straight edge keeps a detector breast's dim tip in clipped
    air (RSNA, SIGMOID: within PAD_RING_MAX of the air) from being skipped as a strip, and
    a strip is at least 2 lines (0.4 % of the long side, the narrowest scanner strip of the
    film phantoms): one RSNA image has a single partial-volume line where its padding meets
    the detector's dim air, and skipping it framed that detector image. Each side against
    the grey that framed it (``peeled``): a film's own border in two corners of its square
    hid the straight edge behind a strip (1 of 66 dressed DDSM films against one side)."""
    h, w = small.shape
    x0, y0, x1, y1 = box

    def strips(side: str, line_at, n_lines: int) -> int:
        """How many lines to skip from this side (0 when no straight edge follows)."""
        greys = peeled[side] or corner

        def off_frame(line) -> np.ndarray:
            return np.min([np.abs(line - v) for v in greys], axis=0)

        n, first_share = 0, 1.0
        while n < min(EDGE_SKIP, n_lines - 2):
            dev = off_frame(line_at(n))
            share = float(np.mean(dev > PAD_TOL))
            if dev.max() > PAD_RING_MAX or share > PAD_STRIP_SHARE:
                break
            first_share = share if n == 0 else first_share
            n += 1
        # one line alone is a strip only when nearly all of it is the frame's grey (the
        # last grainy line of a strip the square's resampling cut: 4 % off); RSNA's
        # partial-volume line is 28 % off
        strip = n >= 2 or (n == 1 and first_share <= PAD_ONE_LINE_STRIP)
        return n if strip and float(np.mean(off_frame(line_at(n)) > PAD_TOL)) >= PAD_STRAIGHT else 0

    top = strips("top", lambda i: small[y0 + i, x0:x1], y1 - y0) if y0 > 0 else 0
    bottom = strips("bottom", lambda i: small[y1 - 1 - i, x0:x1], y1 - y0) if y1 < h else 0
    y0, y1 = y0 + top, y1 - bottom
    left = strips("left", lambda i: small[y0:y1, x0 + i], x1 - x0) if x0 > 0 else 0
    right = strips("right", lambda i: small[y0:y1, x1 - 1 - i], x1 - x0) if x1 < w else 0
    return x0 + left, y0, x1 - right, y1


def film_borders(blurred: np.ndarray) -> np.ndarray:
    """Whole-side border lines and partial border strips as one boolean map."""
    return border_lines(blurred) | border_strips(blurred)
