"""The 66 real DDSM films as other digitisers and archives would have left them: does the
breast box still hold the breast, and does QC flag the boxes that do not?

Each film of ``../shared/data/ddsm_tissue`` goes through every variant of
:mod:`mammodino.synth.film_variants` (transfer curves, 12/16 bits, 4,600 x 2,800, mirrored,
upside down, noise, bright frame and chest band, ruler, a label touching the skin, cropped
views), then through the production ``segment(view="MLO")`` and ``data.qc.check`` (the
checks ``index`` writes into the manifest). Per variant it prints:

- tissue in box: share of the annotated breast (less the pectoral muscle) inside our box,
  min and mean; fibroglandular tissue in box (min) - where lesions arise;
- box IoU against the annotated breast's box (the annotators' skin line lies inside ours on
  most films, so 0.95 is the clean-film level);
- suspect: rows QC flags; wrong-but-pass: rows with tissue in box < 0.95, fibroglandular
  < 0.97 or box IoU < 0.80 that QC lets pass (a silent wrong box).

Usage: python benchmarks/segmentation_variants.py [--ddsm DIR] [--variant NAME ...] [--per-image]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mammodino import machine  # noqa: E402
from mammodino.data import qc  # noqa: E402
from mammodino.data.cache_geometry import box_iou  # noqa: E402
from mammodino.synth.film_variants import BACKGROUND_LABEL, VARIANTS, variant  # noqa: E402
from mammodino.tissue.segmentation import breast_box, segment  # noqa: E402
from segmentation import ddsm_items  # noqa: E402

SHARED = Path(os.environ.get("MAMMODINO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MIN_TISSUE_IN_BOX, MIN_FGT_IN_BOX, MIN_BOX_IOU = 0.95, 0.97, 0.80


def score(film: np.ndarray, labels: np.ndarray) -> dict:
    """Our box and QC verdict on one (variant of a) film against its tissue labels."""
    seg = segment(film, view="MLO")
    x0, y0, x1, y1 = seg.box()
    inside = np.zeros(labels.shape, bool)
    inside[y0:y1, x0:x1] = True
    breast = labels != BACKGROUND_LABEL
    tissue, fgt = breast & (labels != 255), labels == 192
    # as `index` writes the row: QC judges the film inside its frame (picture_box)
    row = {**qc.segmentation_fields(seg, not seg.chest_wall_on_left()),
           # the DDSM films here are all shown chest wall left, whatever their side: no laterality check
           "laterality": "", "laterality_source": ""}
    verdict, reason = qc.check(row, seg.breast_small)
    out = {"tissue_in_box": float((tissue & inside).sum() / max(1, tissue.sum())),
           "fgt_in_box": float((fgt & inside).sum() / max(1, fgt.sum())) if fgt.any() else 1.0,
           "box_iou": box_iou((x0, y0, x1, y1), breast_box(breast)), "qc": verdict, "qc_reason": reason}
    out["wrong"] = (out["tissue_in_box"] < MIN_TISSUE_IN_BOX or out["fgt_in_box"] < MIN_FGT_IN_BOX
                    or out["box_iou"] < MIN_BOX_IOU)
    return out


def run(root: Path, names=None, every: int = 1) -> dict[str, list[dict]]:
    """{variant: [score + film name]} over every ``every``-th DDSM film."""
    items = ddsm_items(root)[::every]
    films = [(name, cv2.imread(str(ip), cv2.IMREAD_GRAYSCALE), cv2.imread(str(lp), cv2.IMREAD_GRAYSCALE))
             for name, ip, lp, _ in items]
    out = {}
    for v in names or VARIANTS:
        out[v] = [dict(score(*variant(v, img, lab)), name=name) for name, img, lab in films]
    return out


def report(results: dict[str, list[dict]], per_image: bool = False) -> str:
    lines = ["| variant | tissue in box, min / mean | fibroglandular in box, min | box IoU, mean / min "
             "| suspect | wrong | wrong but pass |", "|---|---|---|---|---|---|---|"]
    for v, rows in results.items():
        t = [r["tissue_in_box"] for r in rows]
        io = [r["box_iou"] for r in rows]
        wrong = [r for r in rows if r["wrong"]]
        lines.append(f"| {v} | {min(t):.3f} / {np.mean(t):.3f} | {min(r['fgt_in_box'] for r in rows):.3f} "
                     f"| {np.mean(io):.3f} / {min(io):.3f} | {sum(r['qc'] == qc.SUSPECT for r in rows)} of {len(rows)} "
                     f"| {len(wrong)} | {sum(r['qc'] == qc.PASS for r in wrong)} |")
        if per_image:
            lines += [f"|   {r['name']} | {r['tissue_in_box']:.3f} | {r['fgt_in_box']:.3f} | {r['box_iou']:.3f} "
                      f"| {r['qc']} {r['qc_reason']} | | |" for r in wrong]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ddsm", type=Path, default=SHARED / "ddsm_tissue")
    ap.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these (repeatable)")
    ap.add_argument("--per-image", action="store_true", help="list every wrong box with its QC verdict")
    args = ap.parse_args(argv)
    if not args.ddsm.exists():
        print(f"DDSM films not found at {args.ddsm}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    results = run(args.ddsm, args.variant)
    print(f"machine: {machine.one_line()}; {len(next(iter(results.values())))} DDSM films, "
          f"{time.perf_counter() - t:.0f} s")
    print(report(results, args.per_image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
