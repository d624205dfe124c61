"""Segmentation quality benchmark: the production ``segment()`` against real ground truth,
beside a plain Otsu + largest component.

- DDSM films (``ddsm_tissue/``, 66 RIGHT-MLO-named digitised films with manual masks):
  pixel IoU of the breast mask against every non-background label, and of the mask with
  ``remove_pectoral_muscle=True`` against breast-without-pectoral (label 255 removed).
- RSNA (``rsna/breast_boxes``): box IoU against the hand-drawn breast boxes.

A held-out split guards against tuning to these films: the 6 films of ``test/`` plus every
third film of ``train_valid/`` in name order (26 in all) are reported apart ("held").

Usage:
    python benchmarks/segmentation.py                    # prints the tables
    python benchmarks/segmentation.py --write-docs       # also rewrites the table in docs/ingest.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mammodino.data.cache_geometry import box_iou, mask_iou

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data"))
BEGIN, END = "<!-- segmentation-benchmark:begin -->", "<!-- segmentation-benchmark:end -->"
RSNA_BOXED = [
    "10006@1864590858", "10006@1874946579", "10006@462822612",
    "10011@1031443799", "10011@220375232", "10011@270344397", "10011@541722628",
]


def ddsm_items(root: Path) -> list[tuple[str, Path, Path, bool]]:
    """(name, image, label image, held_out) for every DDSM film."""
    out = []
    for split in ("train_valid", "test"):
        names = sorted((root / split / "fgt_seg").glob("*.png"))
        for i, p in enumerate(names):
            held = split == "test" or i % 3 == 2
            out.append((p.stem, p, root / split / "fgt_seg_labels" / f"{p.stem}_LI.png", held))
    return out


def plain_otsu(img: np.ndarray) -> np.ndarray:
    """The baseline of the issue: Otsu on a 512-px blurred copy, largest component, holes filled."""
    from scipy import ndimage as ndi

    from mammodino.tissue.segmentation import downsample

    small, _ = downsample(img)
    as8 = np.clip(cv2.GaussianBlur(small, (0, 0), 1.0) * 255 + 0.5, 0, 255).astype(np.uint8)
    _, m = cv2.threshold(as8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    big = np.zeros(m.shape, bool) if n <= 1 else \
        ndi.binary_fill_holes(labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])))
    return cv2.resize(big.astype(np.uint8), img.shape[::-1], interpolation=cv2.INTER_NEAREST)


def _share(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the pixels of a that are also in b."""
    a = a.astype(bool)
    return float(np.count_nonzero(a & b.astype(bool))) / max(1, np.count_nonzero(a))


def run_ddsm(root: Path) -> list[dict]:
    from mammodino.tissue.segmentation import segment

    rows = []
    for name, img_path, lab_path, held in ddsm_items(root):
        img = cv2.imread(str(img_path), cv2.IMREAD_GRAYSCALE)
        lab = cv2.imread(str(lab_path), cv2.IMREAD_GRAYSCALE)
        breast, no_pec = lab != 64, (lab != 64) & (lab != 255)
        t = time.perf_counter()
        seg = segment(img, view="MLO")
        m = seg.full_mask()
        dt = time.perf_counter() - t
        extent = seg.full_mask(whole_breast=True)  # what the box is of
        mp = segment(img, view="MLO", remove_pectoral_muscle=True).full_mask()
        rows.append({"name": name, "held": held, "otsu": mask_iou(plain_otsu(img), breast),
                     "breast": mask_iou(m, breast), "extent": mask_iou(extent, breast), "no_pec": mask_iou(mp, no_pec),
                     "otsu_no_pec": mask_iou(plain_otsu(img), no_pec), "ms": dt * 1e3,
                     # the sampler decision: how much of the tissue it draws from is muscle,
                     # and how much true breast a removal throws away
                     "pec_share": _share(m, lab == 255), "pec_share_removed": _share(mp, lab == 255),
                     "lost": _share(no_pec, m.astype(bool) & ~mp.astype(bool))})
    return rows


def rsna_references(root: Path) -> list[tuple[str, Path, str | None, tuple[float, float, float, float]]]:
    """(name, DICOM path, view, hand-drawn box normalised to the image) for each boxed RSNA image."""
    import csv

    views = {}
    with open(root / "train.csv", newline="") as f:
        for row in csv.DictReader(f):
            views[f"{row['patient_id']}@{row['image_id']}"] = row["view"]
    out = []
    for name in RSNA_BOXED:
        patient, image = name.split("@")
        path, box_file = root / "train_images" / patient / f"{image}.dcm", root / "breast_boxes" / f"{name}.txt"
        if path.exists() and box_file.exists():
            _, cx, cy, bw, bh = (float(v) for v in box_file.read_text().split())
            out.append((name, path, views.get(name), (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)))
    return out


def run_rsna(root: Path) -> list[dict]:
    from mammodino.io.dicom_reader import read_dicom
    from mammodino.tissue.segmentation import segment

    rows = []
    for name, path, view, (nx0, ny0, nx1, ny1) in rsna_references(root):
        img = read_dicom(path, dtype="uint16")
        h, w = img.pixels.shape
        ref = (nx0 * w, ny0 * h, nx1 * w, ny1 * h)
        t = time.perf_counter()
        box = segment(img.pixels, view=view).box()
        dt = time.perf_counter() - t
        om = plain_otsu(img.pixels)
        ys, xs = np.nonzero(om)
        obox = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        rows.append({"name": name, "view": view, "otsu": box_iou(obox, ref),
                     "box": box_iou(box, ref), "ms": dt * 1e3})
    return rows


def _stats(values) -> str:
    v = np.asarray(list(values))
    return f"mean {v.mean():.3f} min {v.min():.3f}" if v.size else "n/a"


def report(ddsm: list[dict], rsna: list[dict]) -> str:
    lines = ["DDSM films: pixel IoU (breast = the tissue mask against every non-background label; extent = "
             "the whole breast the box is of, out to the foot of the skin ramp; no-pec = with "
             "remove_pectoral_muscle against breast without label 255)", "",
             "| film | split | plain Otsu | breast | extent | plain Otsu vs no-pec | no-pec (removal) |",
             "|---|---|---|---|---|---|---|"]
    for r in ddsm:
        lines.append(f"| {r['name']} | {'held' if r['held'] else 'tune'} | {r['otsu']:.3f} | {r['breast']:.3f} "
                     f"| {r['extent']:.3f} | {r['otsu_no_pec']:.3f} | {r['no_pec']:.3f} |")
    lines.append("")
    for label, sel in (("all", ddsm), ("tune", [r for r in ddsm if not r["held"]]),
                       ("held", [r for r in ddsm if r["held"]])):
        lines.append(f"- DDSM {label} ({len(sel)}): plain Otsu {_stats(r['otsu'] for r in sel)}; "
                     f"breast {_stats(r['breast'] for r in sel)}; extent {_stats(r['extent'] for r in sel)}; "
                     f"no-pec {_stats(r['no_pec'] for r in sel)} "
                     f"({sum(r['no_pec'] < 0.8 for r in sel)} below 0.80)")
    lines.append(f"- pectoral muscle share of the tissue mask (what the sampler draws from): "
                 f"without removal mean {np.mean([r['pec_share'] for r in ddsm]):.3f}, with removal "
                 f"{np.mean([r['pec_share_removed'] for r in ddsm]):.3f}; true breast lost by removal mean "
                 f"{np.mean([r['lost'] for r in ddsm]):.3f}, max {np.max([r['lost'] for r in ddsm]):.3f}, "
                 f"{sum(r['lost'] > 0.05 for r in ddsm)} films lose > 5 %")
    lines += ["", "RSNA: box IoU against the hand-drawn breast boxes", "",
              "| image | view | plain Otsu | segment().box() |", "|---|---|---|---|"]
    for r in rsna:
        lines.append(f"| {r['name']} | {r['view']} | {r['otsu']:.3f} | {r['box']:.3f} |")
    lines += [""]
    for label, sel in (("all", rsna), ("CC", [r for r in rsna if r["view"] == "CC"]),
                       ("MLO", [r for r in rsna if r["view"] == "MLO"])):
        lines.append(f"- RSNA {label} ({len(sel)}): plain Otsu {_stats(r['otsu'] for r in sel)}; "
                     f"segment {_stats(r['box'] for r in sel)}")
    ms = [r["ms"] for r in ddsm]
    lines.append(f"- segment() time: DDSM 960x480 median {np.median(ms):.1f} ms; RSNA full size median "
                 f"{np.median([r['ms'] for r in rsna]) if rsna else float('nan'):.1f} ms (one core)")
    return "\n".join(lines)


def write_docs(text: str, docs: Path) -> None:
    body = docs.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body:
        head, rest = body.split(BEGIN, 1)
        body = head + block + rest.split(END, 1)[1]
    else:
        body = body.rstrip() + "\n\n## Segmentation benchmark (per image)\n\n" \
            "`python benchmarks/segmentation.py --write-docs`\n\n" + block + "\n"
    docs.write_text(body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--no-rsna", action="store_true", help="skip the (slow to decode) RSNA files")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    if not (args.data / "ddsm_tissue").exists():
        print(f"no DDSM films at {args.data / 'ddsm_tissue'}", file=sys.stderr)
        return 1
    ddsm = run_ddsm(args.data / "ddsm_tissue")
    rsna = [] if args.no_rsna else run_rsna(args.data / "rsna")
    text = report(ddsm, rsna)
    print(text)
    if args.write_docs:
        write_docs(text, REPO / "docs" / "ingest.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
