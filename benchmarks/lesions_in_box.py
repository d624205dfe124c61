"""Published lesion positions against the breast boxes `mammodino index` writes.

Held-out real films are judged by exactly this: every published lesion inside its breast
box, and no box a strip or the whole film. Point it at a folder of images and their lesion
table; it indexes the folder with the production command (a fresh cache each run, or
``--cache``), maps each manifest row back to its file (the cache's private key file) and
checks every lesion against the row's ``breast_box``:

- mini-MIAS ``Info.txt`` (``mdb001 G CIRC B 535 425 197``: centre and radius, origin at the
  bottom-left, read by the production parser ``eval.tasks.mias.parse_info``; turned into
  rows from the top with the image's own height);
- or a CSV (``image`` / ``image_id`` / ``file`` = the file stem) with ``x, y[, radius]`` or
  ``xmin, ymin, xmax, ymax`` in source pixels from the top-left (VinDr-Mammo's
  ``finding_annotations.csv``); rows without coordinates (normal images) are skipped.

Printed: images indexed / skipped, QC suspects by reason, boxes that are a strip or nearly
the whole film by QC's own rules (the checks `index` wrote into ``qc_reason``), lesion centres inside the
box, whole lesions (the circle's or the given box, clipped to the image) inside it, and each
failure by file name. ``--per-image`` prints every row.

Usage:
  python benchmarks/lesions_in_box.py SRC TABLE [--labels TABLE] [--table-size WxH] [--cache DIR] [--workers 2] [--per-image]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mammodino import machine  # noqa: E402
from mammodino.data import qc  # noqa: E402
from mammodino.data.cache import read_manifest, with_sources  # noqa: E402
from mammodino.errors import UserError  # noqa: E402
from mammodino.eval.tasks.base import find_col, read_table  # noqa: E402
from mammodino.eval.tasks.mias import is_info_file, parse_info  # noqa: E402
from mammodino.io.labels import stem_of  # noqa: E402  (a table's image name -> file stem, as --labels reads it)


def read_lesions(table: Path) -> list[dict]:
    """Lesions of a MIAS ``Info.txt`` or a CSV of points / boxes, as dicts with ``stem``,
    ``x``, ``y``, ``radius``, ``box`` and ``origin`` ("bottom" for MIAS: y counts up)."""
    if not table.is_file():
        raise UserError(f"lesion table {table}: no such file")
    if is_info_file(table):
        return [{"stem": f.refnum, "x": f.x, "y": f.y, "radius": f.radius, "box": None, "origin": "bottom"}
                for f in parse_info(table) if f.x is not None and f.y is not None]
    header, rows = read_table(table)
    stem_col = find_col(header, "image", "image_id", "file", "stem", table=str(table))
    cols = {c: find_col(header, c, required=False) for c in ("x", "y", "radius", "xmin", "ymin", "xmax", "ymax")}
    if not ((cols["x"] and cols["y"]) or all(cols[c] for c in ("xmin", "ymin", "xmax", "ymax"))):
        raise UserError(f"lesion table {table}: needs columns x, y [radius] or xmin, ymin, xmax, ymax "
                        f"(columns: {', '.join(header)})")
    out = []
    for row in rows:
        def num(col):
            try:
                v = float(row.get(cols[col]) or "nan") if cols[col] else math.nan
            except ValueError:
                v = math.nan
            return None if math.isnan(v) else v

        stem = stem_of(str(row.get(stem_col) or ""))
        if cols["xmin"] and None not in (num("xmin"), num("ymin"), num("xmax"), num("ymax")):
            box = (num("xmin"), num("ymin"), num("xmax"), num("ymax"))
            out.append({"stem": stem, "x": (box[0] + box[2]) / 2, "y": (box[1] + box[3]) / 2, "radius": None,
                        "box": box, "origin": "top"})
        elif cols["x"] and num("x") is not None and num("y") is not None:
            out.append({"stem": stem, "x": num("x"), "y": num("y"), "radius": num("radius"), "box": None,
                        "origin": "top"})
    return out


def place(lesion: dict, height: int, width: int, grid: tuple[int, int] | None = None
          ) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """(centre, extent box clipped to the image) of a lesion in source pixels from the top-left.
    ``grid`` (width, height): the image size the table's coordinates refer to, when the
    files are resized copies (mini-MIAS: 1024 x 1024); None = the image's own."""
    gw, gh = grid or (width, height)
    sx, sy = width / gw, height / gh
    x, y = lesion["x"], lesion["y"]
    if lesion["origin"] == "bottom":
        y = gh - y
    box = lesion["box"]
    if box is None:
        r = lesion["radius"] or 0.0
        box = (x - r, y - r, x + r, y + r)
    x, y, box = x * sx, y * sy, (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    box = (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3]))
    return (x, y), box


def inside(point, box) -> bool:
    """A point inside an (x0, y0, x1, y1) box, x1 / y1 exclusive (the manifest's)."""
    return box is not None and box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def whole_inside(extent, box) -> bool:
    """The lesion's extent within the box (its far edges may touch the exclusive edge)."""
    return box is not None and box[0] <= extent[0] and box[1] <= extent[1] and extent[2] <= box[2] and extent[3] <= box[3]


def index(src: Path, cache: Path, workers: int, labels: Path | None = None) -> str:
    """Run the production ``mammodino index`` (with ``--labels`` when given) and return its
    summary lines."""
    cmd = [sys.executable, "-m", "mammodino", "index", str(src), str(cache), "--workers", str(workers)]
    cmd += ["--labels", str(labels)] if labels else []
    # the command of this tree, not whichever mammodino the interpreter has installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO / "src"), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"mammodino index failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return "\n".join(line for line in done.stdout.splitlines() if line.strip())


def evaluate(cache: Path, lesions: list[dict], grid: tuple[int, int] | None = None) -> list[dict]:
    """One dict per ok row: its box, QC verdict, strip / whole-film findings and lesions."""
    by_stem: dict[str, list[dict]] = {}
    for lesion in lesions:
        by_stem.setdefault(lesion["stem"].lower(), []).append(lesion)
    out = []
    for row in with_sources(cache, read_manifest(cache)):
        stem = stem_of(row.get("source") or "").lower()
        box = qc.parse_box(row["breast_box"])
        names = set(qc.reason_names(row.get("qc_reason")))  # every failed check, as index wrote it
        H, W = int(row["height"]), int(row["width"])
        placed = [place(lesion, H, W, grid) for lesion in by_stem.get(stem, [])]
        out.append({"file": Path(row.get("source") or "").name, "size": f"{W}x{H}", "box": row["breast_box"],
                    "qc": row.get("qc", ""), "qc_reason": row.get("qc_reason", ""),
                    "strip": "strip" in names, "whole": "whole image" in names,
                    "lesions": len(placed), "centre_in": sum(inside(c, box) for c, _ in placed),
                    "whole_in": sum(inside(c, box) and whole_inside(e, box) for c, e in placed),
                    "placed": placed})
    return out


def report(rows: list[dict], lesions_total: int, skipped_line: str, per_image: bool) -> str:
    lines = [skipped_line]
    n_les = sum(r["lesions"] for r in rows)
    lines.append(f"quality control: {qc.format_counts(qc.count_by_reason(rows))}")
    lines.append(f"boxes that are a strip: {sum(r['strip'] for r in rows)}; nearly the whole film: "
                 f"{sum(r['whole'] for r in rows)} (QC's rules)")
    lines.append(f"lesions on indexed images: {n_les} of {lesions_total} in the table; centre inside the box "
                 f"{sum(r['centre_in'] for r in rows)}, whole lesion inside {sum(r['whole_in'] for r in rows)}")
    for r in rows:
        bad = r["strip"] or r["whole"] or r["centre_in"] < r["lesions"]
        if per_image or bad or r["whole_in"] < r["lesions"] or r["qc"] == "suspect":
            marks = [m for m, on in (("STRIP", r["strip"]), ("WHOLE FILM", r["whole"]),
                                     ("LESION OUTSIDE", r["centre_in"] < r["lesions"]),
                                     ("lesion edge outside", r["whole_in"] < r["lesions"])) if on]
            centres = " ".join(f"({c[0]:.0f},{c[1]:.0f})" for c, _ in r["placed"])
            lines.append(f"  {r['file']} {r['size']} box {r['box']} qc {r['qc']} {r['qc_reason']} "
                         f"lesions {r['centre_in']}/{r['lesions']} {centres} {' '.join(marks)}".rstrip())
    return "\n".join(lines)


MIAS_GRID = (1024, 1024)  # mini-MIAS coordinates are on its 1,024-px squares, whatever size a copy has


def _grid(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--table-size {text!r}: expected WxH, e.g. 1024x1024") from None
    return w, h


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="folder of images (DICOM, PGM, PNG, ...)")
    ap.add_argument("table", type=Path, help="MIAS Info.txt or a CSV of lesion points / boxes")
    ap.add_argument("--cache", type=Path, help="index into this cache (kept) instead of a temporary one")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--labels", type=Path, help="passed to index (MIAS: the same Info.txt gives every film its side and MLO)")
    ap.add_argument("--per-image", action="store_true")
    ap.add_argument("--table-size", default=None, metavar="WxH",
                    help="image size the table's coordinates refer to, for resized copies (default: each image's "
                         "own; a mini-MIAS Info.txt: 1024x1024)")
    args = ap.parse_args(argv)
    lesions = read_lesions(args.table)
    grid = _grid(args.table_size) if args.table_size else (MIAS_GRID if lesions and lesions[0]["origin"] == "bottom" else None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lesions-in-box-") as tmp:
        cache = args.cache or Path(tmp) / "cache"
        summary = index(args.src, cache, args.workers, args.labels)
        rows = evaluate(cache, lesions, grid)
    first = next((line for line in summary.splitlines() if line.startswith("indexed")), summary)
    print(f"machine: {machine.one_line()}")
    print(f"{report(rows, len(lesions), first, args.per_image)}\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
