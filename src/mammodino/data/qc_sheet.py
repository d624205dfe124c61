"""The contact sheet of ``mammodino qc``: boxes and masks a person checks in a minute.

Every suspect row first (with its reason), then a random sample of the rows that passed,
as thumbnails with the breast box (red: suspect, green: pass), the mask outline (cyan) and,
on MLO views, the pectoral muscle's edge (yellow) where segmentation finds one. Thumbnails
show the source image when the cache's key file names it and ``src`` is given (the key file
holds paths relative to the indexed folder); otherwise the cached image (cropped to the box,
chest wall on the left), and the page says so. Written: ``page-001.png`` ... (24 tiles
each), ``index.html`` (counts by reason, the pages, a table of suspect rows) and
``sheet.csv`` (tile order). Captions carry the row's pseudonymous id, never a file name.
"""

from __future__ import annotations

import csv
import html
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from mammodino.data import qc
from mammodino.data.cache import CachedImage, read_manifest, with_sources
from mammodino.data.cache_geometry import cache_geometry, mask_on_source
from mammodino.data.indexer import reason_class
from mammodino.errors import SkipFile, UserError

TILE_W, TILE_H, CAPTION_H = 240, 300, 64
COLUMNS, ROWS_PER_PAGE = 6, 4
RED, GREEN, CYAN, YELLOW = (40, 40, 230), (60, 200, 60), (230, 210, 0), (0, 220, 255)  # BGR


def write_contact_sheet(cache_dir, out_dir, src=None, sample: int = 24, max_suspect: int = 240,
                        seed: int = 0) -> dict:
    """Write the sheet for ``cache_dir`` into ``out_dir`` (created; existing sheet files of
    an earlier run are replaced, nothing else is touched). Returns a summary dict."""
    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    every_row = read_manifest(cache_dir, only_ok=False)
    rows = [r for r in every_row if r.get("status") == "ok"]
    if not rows:
        raise UserError(f"{cache_dir}: no ok rows to show")
    rows = with_sources(cache_dir, rows)
    geometry = cache_geometry(cache_dir)
    checked_now = 0
    for row in rows:
        if not row.get("qc"):  # an older cache: judge it here, as index would have
            row["qc"], row["qc_reason"] = qc.check(row, CachedImage(cache_dir, row).breast_mask())
            row["_checked_now"] = True
            checked_now += 1
    suspect = [r for r in rows if r["qc"] == qc.SUSPECT]
    passed = [r for r in rows if r["qc"] != qc.SUSPECT]
    rng = np.random.default_rng(seed)
    shown_pass = [passed[i] for i in sorted(rng.choice(len(passed), size=min(sample, len(passed)), replace=False))] \
        if passed else []
    tiles = suspect[:max_suspect] + shown_pass
    src_root = Path(src).expanduser() if src else None
    if src_root is not None and not src_root.is_dir():
        raise UserError(f"--src {src}: not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    per_page = COLUMNS * ROWS_PER_PAGE
    pages, order, from_source = [], [], 0
    for p in range(0, len(tiles), per_page):
        page_rows = tiles[p:p + per_page]
        page = np.full((ROWS_PER_PAGE * (TILE_H + CAPTION_H), COLUMNS * TILE_W, 3), 255, np.uint8)
        for k, row in enumerate(page_rows):
            tile, shown = _tile(cache_dir, row, geometry, src_root)
            from_source += shown == "source"
            y, x = (k // COLUMNS) * (TILE_H + CAPTION_H), (k % COLUMNS) * TILE_W
            page[y:y + TILE_H + CAPTION_H, x:x + TILE_W] = tile
            order.append({"page": len(pages) + 1, "tile": k + 1, "id": row["id"], "qc": row["qc"],
                          "qc_reason": row.get("qc_reason", ""), "view": row.get("view", ""),
                          "laterality": row.get("laterality", ""), "shown": shown,
                          "checked_now": int(bool(row.get("_checked_now")))})
        used = ((len(page_rows) - 1) // COLUMNS + 1) * (TILE_H + CAPTION_H)
        name = f"page-{len(pages) + 1:03d}.png"
        _write_png(out_dir / name, page[:used])
        pages.append(name)
    counts = qc.count_by_reason(rows)
    skipped = Counter(reason_class(r.get("reason", "")) for r in every_row if r.get("status") == "skipped")
    _write_order(out_dir / "sheet.csv", order)
    summary = {"rows": len(rows), "suspect": len(suspect), "suspect_shown": min(len(suspect), max_suspect),
               "pass_shown": len(shown_pass), "pages": pages, "from_source": from_source,
               "checked_now": checked_now, "reasons": counts["reasons"], "skipped": dict(skipped.most_common()),
               "html": str(out_dir / "index.html")}
    (out_dir / "index.html").write_text(_html(cache_dir, summary, order, src_root is not None), encoding="utf-8")
    return summary


# --------------------------------------------------------------------------- one tile


def _tile(cache_dir: Path, row: dict, geometry: dict, src_root: Path | None) -> tuple[np.ndarray, str]:
    """(tile BGR uint8 (TILE_H + CAPTION_H, TILE_W, 3), "source" | "cache")."""
    image, shown = None, "cache"
    if src_root is not None and row.get("source"):
        try:
            image = _read_source(src_root / row["source"])
            shown = "source"
        except (SkipFile, OSError, ValueError, UserError):
            image = None
    cached = CachedImage(cache_dir, row)
    mask = cached.breast_mask()
    if image is None:
        image = cached.image()
    H, W = image.shape
    scale = min(TILE_W / W, TILE_H / H)
    tw, th = max(1, int(W * scale)), max(1, int(H * scale))
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    grey = _to_8bit(small)
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    suspect = row.get("qc") == qc.SUSPECT
    if shown == "source":
        outline = mask_on_source(row, mask, geometry, scale=scale)
        outline = cv2.resize(outline, (tw, th), interpolation=cv2.INTER_NEAREST)
        box = qc.parse_box(row.get("breast_box"))
        box = tuple(int(round(v * scale)) for v in box) if box else None
    else:
        outline = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_NEAREST)
        box = None
    contours, _ = cv2.findContours(np.ascontiguousarray(outline, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(rgb, contours, -1, CYAN, 1)
    if (row.get("view") or "").upper().startswith("MLO"):
        _draw_pectoral(rgb, small, row.get("view"))
    colour = RED if suspect else GREEN
    if box is not None:
        cv2.rectangle(rgb, (box[0], box[1]), (max(box[0], box[2] - 1), max(box[1], box[3] - 1)), colour, 2)
    else:  # the cached image is the box (+ margin): frame it
        cv2.rectangle(rgb, (0, 0), (tw - 1, th - 1), colour, 2)
    tile = np.full((TILE_H + CAPTION_H, TILE_W, 3), 255, np.uint8)
    oy, ox = (TILE_H - th) // 2, (TILE_W - tw) // 2
    tile[oy:oy + th, ox:ox + tw] = rgb
    tile[:TILE_H][:, :3] = tile[:TILE_H][:, -3:] = 230  # a thin gutter between tiles
    _caption(tile, row, shown, suspect)
    return tile, shown


def _read_source(path: Path) -> np.ndarray:
    """A source file as index reads it (uint16, tissue bright); a volume's middle slice."""
    from mammodino.data.index_walk import classify
    from mammodino.io.dicom_reader import read_dicom
    from mammodino.io.image_reader import read_image

    if not path.is_file():
        raise SkipFile("not a file")
    reader = read_image if classify(path.name) == "image" else read_dicom
    img = reader(path, dtype=np.uint16).pixels
    return img if img.ndim == 2 else img[img.shape[0] // 2]


def _to_8bit(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [0.5, 99.5]) if img.size else (0, 1)
    if hi <= lo:
        hi = lo + 1
    return np.clip((img.astype(np.float32) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def _draw_pectoral(rgb: np.ndarray, small: np.ndarray, view) -> None:
    """The pectoral muscle's edge: what pectoral removal takes away from the breast mask."""
    from mammodino.tissue import breast_mask

    try:
        whole = breast_mask(small, view=view, remove_pectoral_muscle=False)
        without = breast_mask(small, view=view, remove_pectoral_muscle=True)
    except (SkipFile, ValueError):
        return
    muscle = ((whole > 0) & ~(without > 0)).astype(np.uint8)
    if muscle.sum() < 4:
        return
    contours, _ = cv2.findContours(muscle, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(rgb, contours, -1, YELLOW, 1)


def _caption(tile: np.ndarray, row: dict, shown: str, suspect: bool) -> None:
    y = TILE_H + 13
    head = f"{'SUSPECT' if suspect else 'pass'}  {row.get('laterality') or '?'} {row.get('view') or '?'}  " \
           f"tf {float(row.get('tissue_fraction') or 0):.2f}"
    cv2.putText(tile, head, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, RED if suspect else (0, 120, 0), 1, cv2.LINE_AA)
    lines = [f"{row['id']} ({shown}{', checked now' if row.get('_checked_now') else ''})"]
    lines += _wrap(row.get("qc_reason", ""), 42)[:3]
    for i, text in enumerate(lines):
        cv2.putText(tile, text, (4, y + 13 * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.34, (40, 40, 40), 1, cv2.LINE_AA)


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in (text or "").replace(";", "; ").split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return out + ([line] if line else [])


# --------------------------------------------------------------------------- files


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", img)
    if not ok:
        raise UserError(f"{path}: cannot encode PNG")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def _write_order(path: Path, order: list[dict]) -> None:
    cols = ["page", "tile", "id", "qc", "qc_reason", "view", "laterality", "shown", "checked_now"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(order)


def _html(cache_dir: Path, summary: dict, order: list[dict], src_given: bool) -> str:
    e = html.escape
    reasons = ", ".join(f"{e(k)} {v}" for k, v in summary["reasons"].items()) or "none"
    n = len(order)
    if summary["from_source"] == n:
        shown = "the source images (from the key file and --src), with the breast box"
    elif summary["from_source"]:
        shown = (f"the source image for {summary['from_source']} of {n} tiles; the others show the cached image "
                 "(source not found under --src)")
    else:
        why = "the source was not found under --src" if src_given else \
            "no --src given (the key file holds paths relative to the indexed folder)"
        shown = f"the cached images (cropped to the box + margin, chest wall on the left): {why}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>mammodino qc</title>",
        "<style>body{font-family:sans-serif;margin:16px}img{max-width:100%;border:1px solid #ccc}"
        "td,th{padding:2px 8px;text-align:left;font-size:13px}.s{color:#c00}</style></head><body>",
        f"<h1>Quality control: {e(cache_dir.name)}</h1>",
        f"<p>{summary['rows']} ok rows, <b class='s'>{summary['suspect']} suspect</b> ({reasons}). "
        f"Shown: all {summary['suspect_shown']} suspect rows first"
        + (f" (of {summary['suspect']})" if summary["suspect_shown"] < summary["suspect"] else "")
        + f", then {summary['pass_shown']} rows that passed, drawn at random.</p>",
        f"<p>Thumbnails show {e(shown)}. Red box: suspect; green: pass; cyan: breast mask outline; "
        "yellow: pectoral muscle edge (MLO, where found).</p>",
    ]
    if summary["skipped"]:  # what index left out, so that a folder of masks or reports is seen
        listed = "; ".join(f"{v} {e(k)}" for k, v in summary["skipped"].items())
        parts.append(f"<p>{sum(summary['skipped'].values())} files were skipped by index (not shown): {listed}.</p>")
    if summary["checked_now"]:
        parts.append(f"<p>{summary['checked_now']} rows had no qc column (a cache indexed before quality control) "
                     "and were checked now; the manifest is unchanged.</p>")
    for name in summary["pages"]:
        parts.append(f"<p><img src='{e(name)}' alt='{e(name)}'></p>")
    parts.append("<h2>Suspect rows</h2><table><tr><th>page</th><th>tile</th><th>id</th><th>view</th><th>reason</th></tr>")
    for o in order:
        if o["qc"] == qc.SUSPECT:
            parts.append(f"<tr><td>{o['page']}</td><td>{o['tile']}</td><td>{e(o['id'])}</td>"
                         f"<td>{e(o['laterality'])} {e(o['view'])}</td><td>{e(o['qc_reason'])}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
