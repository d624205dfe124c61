"""Cheap quality checks of a segmented mammogram: is this breast box believable?

A wrong breast box is a silent wrong result (the sampler then trains on film borders and
label text), so every ``ok`` manifest row gets ``qc`` = ``pass`` | ``suspect`` and a
``qc_reason`` naming each failed check with its number. The checks read only what the
manifest row holds (source size, breast box, tissue fraction, laterality, flip) and the
cached breast mask, so the same function judges a row as ``index`` writes it and a row of
an older cache that has no ``qc`` column (``mammodino qc`` does that on the fly).

The box is the bounding box of the segmentation mask, so a box edge on an image edge means
the mask touches that edge; the mask (cached: chest wall on the left; or the source's) says
how far along it. Reasons are fixed phrases and numbers: never a name or an id.

Checks (thresholds are module constants; see README "Quality control"):

- ``strip``: the box is a thin band (height < 25 % of the image, width < 12 %, or an aspect
  ratio beyond 1:5) - a film edge or scanner strip taken for the breast;
- ``whole image``: the box covers >= 97 % of both sides - a bright film border taken for it
  (with the mask: not when the mask runs along one side edge, EDGE_RUN, and meets the other
  at a point - a breast cropped tight, chest wall on one side, nipple at the other);
- ``tissue fraction``: outside 4-90 % of the image;
- ``laterality``: the breast leans on the side opposite its laterality tag or label
  (a left breast is displayed with its chest wall on the left);
- ``borders``: the mask touches all four image borders, or three including the side
  opposite the chest wall (chest wall + top + bottom alone is a large breast on a tight
  crop: 6 of the 66 real DDSM films here, all correctly segmented);
- ``shape``: the mask is far from a breast shape (solidity, area / convex-hull area, < 0.80);
- ``tail``: a thin tail of the mask (a leak along a film border or edge strip) stretches the
  box: the box of the mask opened with a disc of 3 % of its long side has IoU < 0.90 with
  the box of the mask;
- ``chest wall``: the box stops short of the chest-wall edge by more than 15 % of the width
  (a breast floats free of the edge it is pressed against: a label or marker was taken).
"""

from __future__ import annotations

import cv2
import numpy as np

from mammodino.data.cache import QC_COLUMNS  # noqa: F401  (the manifest columns this fills)
from mammodino.tissue import tails

PASS, SUSPECT = "pass", "suspect"

STRIP_MIN_HEIGHT = 0.25  # box height / image height
STRIP_MIN_WIDTH = 0.12  # box width / image width
STRIP_MAX_ASPECT = 5.0  # long side / short side of the box, source pixels
WHOLE_IMAGE = 0.97  # box side / image side, on both sides
TISSUE_RANGE = (0.04, 0.90)  # RSNA's smallest real breast here: 0.087 of a 5355x4915 detector
BORDER_TOL = 0.005  # a box edge within this share of the side counts as touching
MAX_BORDERS = 2
MIN_SOLIDITY = 0.80
MIN_BODY_BOX_IOU = 0.90  # box of the opened mask vs box of the mask (real breasts here: >= 0.94)
CHEST_WALL_GAP = 0.15  # box gap to the chest-wall edge / image width
# with the mask: the mask runs along an image edge when it covers this share of it. 30 MIAS
# films cropped tight to the breast (14 were "whole image" suspects, every box right): the
# chest wall 0.36-1.0, the nipple side 0-0.15 (a point); a film border taken runs along a
# whole side; a DDSM film laid crooked in a square meets the sides at its corners (<= 0.04)
EDGE_RUN = 0.25

# the check names, in the order reasons are written (also the summary's groups)
CHECKS = ("strip", "whole image", "tissue fraction", "laterality", "borders", "shape", "tail", "chest wall")


def box_text(box) -> str:
    """``"x0 y0 x1 y1"`` as the manifest and the phantom labels store a box; empty for none
    (:func:`parse_box` reads it back)."""
    return " ".join(str(int(v)) for v in box) if box else ""


def segmentation_fields(seg, flipped: bool) -> dict:
    """The manifest fields QC reads that come from one segmentation, as ``index`` writes them
    (source size, breast box, picture box, tissue fraction, flip): benchmarks and tests judge
    a segmentation through these, so they judge what ``index`` writes."""
    H, W = seg.source_shape
    return {"height": int(H), "width": int(W), "breast_box": box_text(seg.box()),
            "picture_box": box_text(seg.picture_box()), "tissue_fraction": f"{seg.tissue_fraction:.4f}",
            "flipped": int(flipped)}


def parse_box(text) -> tuple[int, int, int, int] | None:
    """``"x0 y0 x1 y1"`` -> ints, or None when absent or malformed."""
    try:
        values = tuple(int(float(v)) for v in str(text or "").split())
    except ValueError:
        return None
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        return None
    return values  # type: ignore[return-value]


def solidity(mask: np.ndarray) -> float:
    """Mask area / area of its convex hull (1 for a convex shape; 0 for an empty mask)."""
    m = np.ascontiguousarray(np.asarray(mask) > 0, dtype=np.uint8)
    area = int(m.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    points = np.concatenate(contours)
    hull = cv2.convexHull(points)
    # contour areas are measured between pixel centres: compare like with like
    hull_area = float(cv2.contourArea(hull)) + 0.5 * float(cv2.arcLength(hull, True)) + 1.0
    return float(min(1.0, area / hull_area))


def check(row: dict, mask: np.ndarray | None = None) -> tuple[str, str]:
    """(``pass`` | ``suspect``, reason) of one ok manifest row; ``mask`` is its cached
    breast mask (the shape check is left out without it)."""
    failed = findings(row, mask)
    return (SUSPECT, "; ".join(text for _, text in failed)) if failed else (PASS, "")


def findings(row: dict, mask: np.ndarray | None = None) -> list[tuple[str, str]]:
    """[(check name, reason text)] of every failed check, in :data:`CHECKS` order."""
    out: list[tuple[str, str]] = []
    try:
        H, W = int(float(row.get("height") or 0)), int(float(row.get("width") or 0))
    except ValueError:
        H = W = 0
    box = parse_box(row.get("breast_box"))
    tf = _float(row.get("tissue_fraction"))
    picture = parse_box(row.get("picture_box"))
    if picture is not None and H > 0 and W > 0:  # judge the film, not its padding frame
        px0, py0, px1, py1 = picture
        if tf is not None:
            tf = tf * H * W / max(1, (px1 - px0) * (py1 - py0))
        if box is not None:
            box = (max(0, box[0] - px0), max(0, box[1] - py0), min(px1, box[2]) - px0, min(py1, box[3]) - py0)
            box = box if box[2] > box[0] and box[3] > box[1] else None
        H, W = py1 - py0, px1 - px0
    # how far the mask runs along each image edge (top, bottom, one side, the other), when its
    # grid ends at the image's edges (no padding frame; the cached region reaches every
    # edge the box touches)
    runs = edge_runs(mask) if mask is not None and picture is None and np.asarray(mask).any() else None
    if box is not None and H > 0 and W > 0:
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        fw, fh = bw / W, bh / H
        aspect = max(bw, bh) / max(1, min(bw, bh))
        if fh < STRIP_MIN_HEIGHT or fw < STRIP_MIN_WIDTH or aspect > STRIP_MAX_ASPECT:
            out.append(("strip", f"box is a strip ({100 * fw:.0f}% x {100 * fh:.0f}% of the image)"))
        # a breast cropped tight fills the box too, but runs along its chest-wall edge and
        # meets its nipple side at a point; a film border taken runs along both sides, a
        # film laid crooked in its scan along neither
        tight_crop = runs is not None and max(runs[2], runs[3]) >= EDGE_RUN > min(runs[2], runs[3])
        if fw >= WHOLE_IMAGE and fh >= WHOLE_IMAGE and not tight_crop:
            out.append(("whole image", f"box covers nearly the whole image ({100 * fw:.0f}% x {100 * fh:.0f}%)"))
    if tf is not None and not TISSUE_RANGE[0] <= tf <= TISSUE_RANGE[1]:
        out.append(("tissue fraction", f"implausible tissue fraction {tf:.3f}"))
    lat, source = (row.get("laterality") or "").upper(), row.get("laterality_source") or ""
    flipped = _float(row.get("flipped"))
    if lat in ("L", "R") and source in ("tag", "labels") and flipped is not None:
        leans_right = bool(flipped)
        if leans_right != (lat == "R"):
            side = "right" if leans_right else "left"
            out.append(("laterality", f"breast on the {side} side but laterality {source} says {lat}"))
    if box is not None and H > 0 and W > 0:
        x0, y0, x1, y1 = box
        tx, ty = BORDER_TOL * W + 1, BORDER_TOL * H + 1
        touching = [x0 <= tx, y0 <= ty, x1 >= W - tx, y1 >= H - ty]
        far_side = touching[0] if flipped else touching[2]
        # chest wall + top + bottom is a large breast on a tight crop (7 of 66 DDSM films here);
        # three borders with the nipple side, or all four, is a film border or strip taken
        if sum(touching) == 4 or (sum(touching) > MAX_BORDERS and far_side):
            out.append(("borders", f"mask touches {sum(touching)} image borders"))
        gap = (W - x1) if flipped else x0
        if flipped is not None and gap > CHEST_WALL_GAP * W:
            out.append(("chest wall", f"box stops {100 * gap / W:.0f}% short of the chest-wall edge"))
    if mask is not None and np.asarray(mask).any():
        s = solidity(mask)
        if s < MIN_SOLIDITY:
            out.append(("shape", f"mask far from a breast shape (solidity {s:.2f})"))
        body = body_box_iou(mask)
        if body < MIN_BODY_BOX_IOU:
            out.append(("tail", f"thin tail of the mask stretches the box (body box IoU {body:.2f})"))
    return out


def edge_runs(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Share of the top, bottom, left and right edge of the mask's grid that the mask covers."""
    m = np.asarray(mask) > 0
    return float(m[0].mean()), float(m[-1].mean()), float(m[:, 0].mean()), float(m[:, -1].mean())


def body_box_iou(mask: np.ndarray) -> float:
    """IoU of the box of the mask's body (:func:`mammodino.tissue.tails.body`: opened by a disc
    of TAIL_RADIUS x its long side) with the box of the whole mask: 1 when no thin part
    reaches beyond the body."""
    m = np.asarray(mask) > 0
    whole, core = _mask_box(m), _mask_box(tails.body(m))
    if whole is None:
        return 1.0
    if core is None:
        return 0.0
    ix = max(0, min(whole[2], core[2]) - max(whole[0], core[0]))
    iy = max(0, min(whole[3], core[3]) - max(whole[1], core[1]))
    union = (whole[2] - whole[0]) * (whole[3] - whole[1]) + (core[2] - core[0]) * (core[3] - core[1]) - ix * iy
    return float(ix * iy / union) if union else 1.0


def _mask_box(m: np.ndarray):
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return None if rows.size == 0 else (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def reason_names(reason: str) -> list[str]:
    """The check names a ``qc_reason`` holds (for counting rows by reason)."""
    names = []
    for part in (reason or "").split(";"):
        part = part.strip()
        for name in CHECKS:
            if _PHRASES[name] in part:
                names.append(name)
                break
        else:
            if part:
                names.append("other")
    return names


_PHRASES = {"strip": "is a strip", "whole image": "nearly the whole image", "tissue fraction": "tissue fraction",
            "laterality": "laterality", "borders": "image borders", "shape": "breast shape", "tail": "thin tail",
            "chest wall": "chest-wall edge"}


def new_counts() -> dict:
    return {"rows": 0, "checked": 0, "suspect": 0, "reasons": {}}


def add_to_counts(summary: dict, row: dict) -> None:
    """Count one row into a :func:`new_counts` summary (constant memory over a run)."""
    if row.get("status", "ok") != "ok":
        return
    summary["rows"] += 1
    value = row.get("qc") or ""
    if not value:
        return
    summary["checked"] += 1
    if value == SUSPECT:
        summary["suspect"] += 1
        for name in dict.fromkeys(reason_names(row.get("qc_reason", ""))):
            summary["reasons"][name] = summary["reasons"].get(name, 0) + 1


def count_by_reason(rows) -> dict:
    """{"rows", "checked", "suspect", "reasons": {check name: rows}} of ok rows, reasons most
    frequent first; rows without a ``qc`` value (an older cache) are counted as not checked."""
    summary = new_counts()
    for row in rows:
        add_to_counts(summary, row)
    summary["reasons"] = dict(sorted(summary["reasons"].items(), key=lambda kv: (-kv[1], kv[0])))
    return summary


def format_counts(summary: dict) -> str:
    """``3 of 40 ok rows suspect (strip 2, borders 1)``; a row may fail several checks."""
    text = f"{summary['suspect']} of {summary['checked']} ok rows suspect"
    reasons = sorted(summary["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    if reasons:
        text += " (" + ", ".join(f"{k} {v}" for k, v in reasons) + ")"
    return text


def _float(value) -> float | None:
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None
