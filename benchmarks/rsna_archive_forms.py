"""The real RSNA detector images in the forms converted archives hand them out: does the box
still match the hand-drawn one, and does QC flag what goes wrong?

Each boxed RSNA DICOM of ``../shared/data/rsna`` is written out as users and public mirrors
convert them (8-bit PNG at a long side of 2,048 / 1,024 / 512, JPEG at quality 90 and 60,
16-bit PNG saved air white, as a MONOCHROME1 file written without its inversion, another
transfer curve), read back by the production reader (``io.image_reader.read_image``),
segmented by ``segment()`` and judged by ``data.qc.check``. Printed per form: box IoU
against the hand-drawn box (mean / min), how many the reader turned back to tissue-bright,
suspect rows and boxes below IoU 0.75 that QC passes.

Usage: python benchmarks/rsna_archive_forms.py [--rsna DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mammodino import machine  # noqa: E402
from mammodino.data import qc  # noqa: E402
from mammodino.data.cache_geometry import box_iou  # noqa: E402
from mammodino.errors import SkipFile  # noqa: E402
from mammodino.io.dicom_reader import read_dicom  # noqa: E402
from mammodino.io.image_reader import read_image  # noqa: E402
from mammodino.tissue.segmentation import segment  # noqa: E402
from segmentation import rsna_references  # noqa: E402

SHARED = Path(os.environ.get("MAMMODINO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FAR_OFF = 0.75  # a box this far from the hand-drawn one is wrong


def _resized(u8: np.ndarray, long_side: int) -> np.ndarray:
    h, w = u8.shape
    s = long_side / max(h, w)
    return cv2.resize(u8, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def archive_forms(pixels: np.ndarray, folder: Path) -> dict[str, Path | np.ndarray]:
    """{form: file written (read back by read_image) or array (given to segment as is)}."""
    u8 = (pixels / 257.0 + 0.5).astype(np.uint8)
    files: dict[str, Path | np.ndarray] = {"DICOM as read": pixels}
    for long_side in (2048, 1024, 512):
        files[f"8-bit PNG, {long_side} px"] = _write(folder / f"p{long_side}.png", _resized(u8, long_side))
    for q in (90, 60):
        files[f"JPEG q{q}, 1024 px"] = _write(folder / f"j{q}.jpg", _resized(u8, 1024), [cv2.IMWRITE_JPEG_QUALITY, q])
    files["16-bit PNG, air white"] = _write(folder / "white.png", (65535 - pixels).astype(np.uint16))
    files["darker curve (gamma 2.2)"] = (65535.0 * (pixels / 65535.0) ** 2.2).astype(np.uint16)
    files["brighter curve (gamma 0.45)"] = (65535.0 * (pixels / 65535.0) ** 0.45).astype(np.uint16)
    return files


def _write(path: Path, img: np.ndarray, params=()) -> Path:
    cv2.imwrite(str(path), img, list(params))
    return path


def score(source, view, laterality: str, ref) -> dict:
    """Box IoU (normalised coordinates), reader inversion and QC verdict of one form."""
    inverted = False
    if isinstance(source, Path):
        image = read_image(source, dtype="uint16")
        pixels, inverted = image.pixels, bool(image.meta["inverted"])
    else:
        pixels = source
    h, w = pixels.shape
    try:
        seg = segment(pixels, view=view)
    except SkipFile as exc:
        return {"iou": 0.0, "inverted": inverted, "qc": "skipped", "reason": exc.reason}
    x0, y0, x1, y1 = seg.box()
    row = {**qc.segmentation_fields(seg, not seg.chest_wall_on_left()), "laterality": laterality,
           "laterality_source": "tag"}  # as `index` writes it, the picture box included
    verdict, reason = qc.check(row, seg.breast_small)
    return {"iou": box_iou((x0 / w, y0 / h, x1 / w, y1 / h), ref), "inverted": inverted, "qc": verdict, "reason": reason}


def run(root: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, view, ref in rsna_references(root):
            image = read_dicom(path, dtype="uint16")
            for form, source in archive_forms(image.pixels, Path(tmp)).items():
                r = score(source, view, image.meta.get("laterality") or "", ref)
                out.setdefault(form, []).append(dict(r, name=name))
    return out


def report(results: dict[str, list[dict]]) -> str:
    lines = ["| form | box IoU, mean / min | read inverted | suspect or skipped | IoU < 0.75, QC pass |",
             "|---|---|---|---|---|"]
    for form, rows in results.items():
        iou = [r["iou"] for r in rows]
        silent = sum(r["iou"] < FAR_OFF and r["qc"] == qc.PASS for r in rows)
        lines.append(f"| {form} | {np.mean(iou):.3f} / {min(iou):.3f} | {sum(r['inverted'] for r in rows)} of {len(rows)} "
                     f"| {sum(r['qc'] != qc.PASS for r in rows)} | {silent} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rsna", type=Path, default=SHARED / "rsna")
    args = ap.parse_args(argv)
    if not (args.rsna / "breast_boxes").exists():
        print(f"RSNA boxed images not found at {args.rsna}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    results = run(args.rsna)
    print(f"machine: {machine.one_line()}; {len(next(iter(results.values())))} RSNA images, "
          f"{time.perf_counter() - t:.0f} s")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
