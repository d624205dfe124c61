"""A film scanned crooked: find the tilt from its straight edges and segment it upright.

Every film test of :mod:`mammodino.tissue.film` walks rows and columns from the image edges
(border lines, border strips, padding frames). A film laid a few degrees crooked on the
scanner turns its unexposed border into a wedge and the scanner bed into triangles in the
corners: on the 66 DDSM films so laid (3-8 degrees, dark or light bed, with or without the
bright border) 9-65 boxes per variant were wrong, the whole scan or, on a light bed, a box
holding 6 % of the fibroglandular tissue. Turned upright first, the scan is the familiar
axis-aligned case; the masks are turned back onto the scan's own grid.

The tilt is read from the film's own edges (Canny, then a Hough transform, then a line
fitted to the pixels near the strongest candidate: the Hough bins alone left the upright
edge 2 px off straight). A film edge runs 1-12 degrees off an image axis over at least
``MIN_SUPPORT`` of the image's long side (a film edge runs its film's length: at half, a
ruler 80 % of the height long laid 7 degrees crooked was read as a tilt and turned three DDSM
films wrong), is straight (``MIN_STRAIGHT``: a phantom border's
ragged light-field edge gave 0.77, film edges 0.98-0.99), has a flat side (scanner bed,
unexposed film) along ``MIN_FLAT_SHARE`` of it and one step across it, brighter on the same
side along ``MIN_STEP_SHARE`` of it (scanner-noise lines have a random sign). None of the 66
DDSM films in 15 archive variants, the 11 RSNA images, 80 film phantoms and 88 detector
phantoms shows such an edge (the pectoral muscle's is shorter and has no flat side); all
330 crooked DDSM scans (5 variants) do, read within 0.05 degrees. Below 1 degree the axis-aligned tests
hold already.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from mammodino.tissue.film import dynamic_range, local_std

MIN_TILT_DEG, MAX_TILT_DEG = 1.0, 12.0  # tilts handled (below: the axis-aligned tests hold)
MIN_SUPPORT = 0.85  # edge pixels on the line: at least this x the image's long side (a film edge runs its film's length)
MIN_STRAIGHT = 0.9  # of the edge pixels within 3 px of the line, this share within 1 px
CANDIDATE_SUPPORT = 0.35  # Hough lines with this many votes are fitted and counted again
MIN_FLAT_SHARE = 0.6  # a flat neighbour on one side for this share of the edge's pixels
FLAT_STD = 0.01  # flat: local standard deviation below this x the dynamic range
MIN_STEP = 0.02  # a step across the edge: at least this x the dynamic range ...
MIN_STEP_SHARE = 0.8  # ... of one sign along this share of its pixels
SIDE_OFFSET = 7  # pixels (at 512) from the edge to its sides: past the blur and the 7-px std window
CANNY_LOW, CANNY_HIGH = 8, 24  # on the image stretched to 8 bits over its dynamic range


def scan_tilt(small: np.ndarray) -> float | None:
    """Degrees (counter-clockwise positive, as ``cv2.getRotationMatrix2D``) that the scan
    is turned by, from its strongest flat-sided straight edge; None when it is upright."""
    blurred = cv2.GaussianBlur(small, (0, 0), 1.0)
    lo, hi = dynamic_range(blurred)
    span = hi - lo
    as8 = np.clip((blurred - lo) / span * 255.0 + 0.5, 0, 255).astype(np.uint8)
    flat = local_std(blurred, 7) < FLAT_STD * span
    # only edges with a flat pixel within SIDE_OFFSET can be a film's edge: the breast's
    # texture edges go before the Hough transform (4.2 -> 1.6 ms on the RSNA images)
    near_flat = cv2.dilate(flat.astype(np.uint8), np.ones((2 * SIDE_OFFSET + 1,) * 2, np.uint8))
    edges = cv2.Canny(as8, CANNY_LOW, CANNY_HIGH) * near_flat
    ys, xs = np.nonzero(edges)
    xs, ys = xs.astype(np.float32), ys.astype(np.float32)
    h, w = small.shape
    lo_t, hi_t = np.deg2rad(MIN_TILT_DEG), np.deg2rad(MAX_TILT_DEG)
    # Hough normal angles: near 0 / pi for near-vertical lines, near pi/2 for near-horizontal
    # support against the long side for either direction: on a narrow film the breast's
    # lower contour ran straight over half the short side (a 4,600 x 2,800 DDSM film, 9 deg)
    side = max(h, w)
    ranges = ((lo_t, hi_t), (np.pi - hi_t, np.pi - lo_t), (np.pi / 2 - hi_t, np.pi / 2 - lo_t),
              (np.pi / 2 + lo_t, np.pi / 2 + hi_t))
    best: tuple[float, float] | None = None  # support, tilt
    for t0, t1 in ranges:
        # candidates at a lower count: an edge between two Hough bins splits its votes
        lines = cv2.HoughLines(edges, 1, np.pi / 720, int(CANDIDATE_SUPPORT * side),
                               min_theta=float(t0), max_theta=float(t1))
        for rho, theta in (() if lines is None else lines.reshape(-1, 2)[:8]):
            near = np.abs(xs * np.cos(theta) + ys * np.sin(theta) - rho) <= 2.0
            if near.sum() < CANDIDATE_SUPPORT * side:
                continue
            line = cv2.fitLine(np.stack([xs[near], ys[near]], 1), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
            on = _within(line, xs, ys, 1.0)
            support = float(on.sum()) / side
            if support < MIN_SUPPORT or (best is not None and support <= best[0]):
                continue
            if on.sum() < MIN_STRAIGHT * _within(line, xs, ys, 3.0).sum():
                continue  # a wavy edge (a border's ragged light-field edge) is no film edge
            if _film_edge(flat, blurred, xs[on], ys[on], line, span):
                best = (support, _tilt_of(line))
    if best is None or not MIN_TILT_DEG <= abs(best[1]) <= MAX_TILT_DEG:
        return None
    return best[1]


def _within(line: np.ndarray, xs: np.ndarray, ys: np.ndarray, dist: float) -> np.ndarray:
    vx, vy, x0, y0 = line
    return np.abs((xs - x0) * vy - (ys - y0) * vx) <= dist


def _tilt_of(line: np.ndarray) -> float:
    """A fitted line's tilt off its nearer image axis, as :func:`scan_tilt` reports it.
    (Image y points down: a near-vertical edge whose x grows downwards is content turned
    counter-clockwise, as is a near-horizontal one whose y falls to the right.)"""
    vx, vy = float(line[0]), float(line[1])
    if abs(vy) >= abs(vx):
        vx, vy = (vx, vy) if vy > 0 else (-vx, -vy)
        return float(np.rad2deg(np.arctan2(vx, vy)))
    vx, vy = (vx, vy) if vx > 0 else (-vx, -vy)
    return float(-np.rad2deg(np.arctan2(vy, vx)))


def _film_edge(flat: np.ndarray, blurred: np.ndarray, px: np.ndarray, py: np.ndarray, line: np.ndarray,
               span: float) -> bool:
    """The edge pixels on a line make a film's edge: one side flat (bed or unexposed film)
    along MIN_FLAT_SHARE of them, and one step, brighter on the same side along
    MIN_STEP_SHARE of them (scanner noise lines a random sign, the pectoral edge no flat side)."""
    if px.size == 0:
        return False
    h, w = flat.shape
    nx, ny = float(line[1]), -float(line[0])  # the line's normal
    sides = []
    for sign in (-1, 1):
        qx = np.clip(np.round(px + sign * SIDE_OFFSET * nx).astype(int), 0, w - 1)
        qy = np.clip(np.round(py + sign * SIDE_OFFSET * ny).astype(int), 0, h - 1)
        sides.append((flat[qy, qx], blurred[qy, qx]))
    flat_share = max(float(np.mean(f)) for f, _ in sides)
    step = sides[1][1] - sides[0][1]
    big = np.abs(step) > MIN_STEP * span
    step_share = max(float(np.mean(big & (step > 0))), float(np.mean(big & (step < 0))))
    return flat_share >= MIN_FLAT_SHARE and step_share >= MIN_STEP_SHARE


class Upright(NamedTuple):
    """The affine map from the small image onto an upright canvas large enough for all of it."""
    matrix: np.ndarray  # 2x3, small -> canvas
    canvas: tuple[int, int]  # (width, height)
    shape: tuple[int, int]  # (h, w) of the small image

    def image(self, small: np.ndarray) -> np.ndarray:
        """The small image turned upright; the canvas outside it takes the grey of the
        image's corners, which a crooked scan shows the scanner bed in: bed and canvas then
        make one constant frame around the upright film. (Repeating the image's edge drew
        rays of a border's bright corner across the canvas; the median of its outermost
        lines, a mix of border and bed, left a grey frame that the bed's wedges broke.)"""
        k = 3
        corners = np.concatenate([small[:k, :k].ravel(), small[:k, -k:].ravel(),
                                  small[-k:, :k].ravel(), small[-k:, -k:].ravel()])
        return self.onto(small, float(np.median(corners)))

    def onto(self, img: np.ndarray, fill: float, nearest: bool = False) -> np.ndarray:
        """``img`` (of the small image's shape) on the canvas, ``fill`` outside it; ``nearest``
        for masks and label images."""
        return cv2.warpAffine(img, self.matrix, self.canvas, flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)

    def back(self, mask: np.ndarray) -> np.ndarray:
        """A canvas mask on the small image's own grid."""
        h, w = self.shape
        return cv2.warpAffine(mask, self.matrix, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def box_back(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """The small-grid bounding box of a canvas box (x0, y0, x1, y1), clipped to the image;
        None when that is the whole image."""
        h, w = self.shape
        out = _box_through(cv2.invertAffineTransform(self.matrix), box, (w, h))
        return None if out == (0, 0, w, h) or out[2] <= out[0] or out[3] <= out[1] else out

    def box_onto(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """The canvas bounding box of a small-grid box (x0, y0, x1, y1)."""
        return _box_through(self.matrix, box, self.canvas)


def _box_through(matrix: np.ndarray, box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The bounding box, clipped to ``size`` (width, height), of ``box`` mapped by ``matrix``."""
    x0, y0, x1, y1 = box
    pts = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return (max(0, int(np.floor(pts[:, 0].min()))), max(0, int(np.floor(pts[:, 1].min()))),
            min(size[0], int(np.ceil(pts[:, 0].max()))), min(size[1], int(np.ceil(pts[:, 1].max()))))


def upright(shape: tuple[int, int], tilt_deg: float) -> Upright:
    """The map that undoes a tilt of ``tilt_deg`` (see :func:`scan_tilt`)."""
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -tilt_deg, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    cw, ch = int(np.ceil(h * s + w * c)), int(np.ceil(h * c + w * s))
    m[0, 2] += cw / 2.0 - w / 2.0
    m[1, 2] += ch / 2.0 - h / 2.0
    return Upright(m, (cw, ch), (h, w))
