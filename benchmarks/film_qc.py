"""Film phantoms through `mammodino index`: qc counts by reason, breast box and mask IoU
against the ground truth, and whether every wrong box is flagged.

Writes a film phantom set (`synth --film`: Secondary Capture, RLE / uncompressed, bright
borders, edge strips, labels, markers, tape, scanner noise; view only in PatientID), indexes
it with the production command, and compares each row with the phantom's truth:

- box IoU: manifest ``breast_box`` vs labels ``breast_box`` (source pixels);
- mask IoU: the cached mask put back on the source grid vs ``.truth/<id>.png``;
- qc: how many rows are suspect and why, and how many wrong boxes (IoU < 0.8) pass;
- lesions: how many phantom lesions (centre, and whole lesion box) lie inside the breast box.

``--png8`` turns the same films into what older digitised-film collections ship (MIAS-like:
8-bit grey PNG, the film scaled to a long side of 1,024 and centred on a black 1024 x 1024
square, no header at all), with the truth scaled alike, and indexes those instead; with
``--jpeg`` they are JPEG copies (quality 90), whose black frame is no longer one grey level.

Usage:
  python benchmarks/film_qc.py --n 40 --size 1200x720 --workers 2 [--work /tmp/film-qc] [--per-image] [--png8 [--jpeg]]
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

WRONG_BOX_IOU = 0.8


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (StopIteration, OSError):
        model = platform.processor() or "unknown CPU"
    import torch

    return f"{model}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def evaluate(src: Path, cache: Path) -> list[dict]:
    """One dict per indexed film: truth vs manifest (box IoU, mask IoU, qc)."""
    from mammodino.data.cache import CachedImage, read_manifest, with_sources
    from mammodino.data.cache_geometry import box_iou, cache_geometry, mask_iou, mask_on_source
    from mammodino.data.qc import parse_box

    truth = {r["path"]: r for r in csv.DictReader((src / "labels.csv").open(newline=""))}
    geometry = cache_geometry(cache)
    out = []
    for row in with_sources(cache, read_manifest(cache)):
        t = truth.get(row["source"])
        if t is None:
            continue
        gt_mask = cv2.imread(str(src / t["breast_mask"]), cv2.IMREAD_GRAYSCALE) if t["breast_mask"] else None
        mask = CachedImage(cache, row).breast_mask()
        m_iou = mask_iou(mask_on_source(row, mask, geometry), gt_mask) if gt_mask is not None else float("nan")
        out.append({"image": t["image_id"], "view": t["view"], "laterality": t["laterality"],
                    "box_iou": box_iou(parse_box(row["breast_box"]), parse_box(t["breast_box"])),
                    "mask_iou": m_iou, "box": parse_box(row["breast_box"]),
                    "lesion_box": parse_box(t["lesion_box"]) if t.get("lesion_box") else None, "qc": row.get("qc", ""), "qc_reason": row.get("qc_reason", ""),
                    "laterality_read": row["laterality"], "view_read": row["view"], "patient_key": row["patient_key"]})
    return out


def _centre(box):
    return ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)


def _inside(point, box) -> bool:
    """The point lies in the (x0, y0, x1, y1) box (edges included)."""
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def to_png8(src: Path, dst: Path, side: int = 1024, jpeg: bool = False) -> Path:
    """The film set as 8-bit 1024 x 1024 PNGs (film scaled to the long side, centred on black),
    with labels.csv, breast boxes and truth masks mapped onto the new grid. ``jpeg``: JPEG at
    quality 90 instead (how web copies of such sets ship): the black frame is then no
    longer one grey level, JPEG ringing runs along the film's edge."""
    import pydicom

    rows = list(csv.DictReader((src / "labels.csv").open(newline="")))
    (dst / "png").mkdir(parents=True, exist_ok=True)
    (dst / ".truth").mkdir(exist_ok=True)
    out = []
    for r in rows:
        ds = pydicom.dcmread(src / r["path"])
        px = ds.pixel_array.astype(np.float64) / float(2 ** int(ds.BitsStored) - 1)
        h, w = px.shape
        scale = side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        ox, oy = (side - nw) // 2, (side - nh) // 2
        canvas = np.zeros((side, side), np.uint8)
        canvas[oy:oy + nh, ox:ox + nw] = np.clip(cv2.resize(px, (nw, nh), interpolation=cv2.INTER_AREA) * 255 + 0.5, 0, 255)
        truth = cv2.imread(str(src / r["breast_mask"]), cv2.IMREAD_GRAYSCALE)
        tmask = np.zeros((side, side), np.uint8)
        tmask[oy:oy + nh, ox:ox + nw] = cv2.resize(truth, (nw, nh), interpolation=cv2.INTER_NEAREST)
        name = Path(r["path"]).stem
        image_name = f"{name}.jpg" if jpeg else f"{name}.png"
        cv2.imwrite(str(dst / "png" / image_name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [])
        cv2.imwrite(str(dst / ".truth" / f"{name}.png"), tmask)
        ys, xs = np.nonzero(tmask)
        box = f"{xs.min()} {ys.min()} {xs.max() + 1} {ys.max() + 1}" if xs.size else ""
        lesion = r.get("lesion_box", "")
        if lesion:
            x0, y0, x1, y1 = (float(v) for v in lesion.split())
            lesion = " ".join(str(round(v)) for v in (ox + x0 * scale, oy + y0 * scale, ox + x1 * scale, oy + y1 * scale))
        out.append({**r, "path": f"png/{image_name}", "breast_box": box, "breast_mask": f".truth/{name}.png",
                    "lesion_box": lesion})
    with (dst / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--size", default="1200x720", help="film ROWSxCOLS (CBIS films are ~4600x2800)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default="/tmp/mammodino-film-qc")
    ap.add_argument("--per-image", action="store_true", help="print one line per film")
    ap.add_argument("--png8", action="store_true", help="index 8-bit 1024x1024 PNG copies of the films (MIAS-like)")
    ap.add_argument("--jpeg", action="store_true", help="with --png8: JPEG (quality 90) copies instead of PNG")
    args = ap.parse_args(argv)
    from mammodino.data import qc
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    rows_cols = tuple(int(v) for v in args.size.lower().split("x"))
    work = Path(args.work)
    src, cache = work / f"films-{args.n}-{args.size}-{args.seed}", work / f"cache-{args.n}-{args.size}-{args.seed}"
    t0 = time.perf_counter()
    generate_phantoms(src, n_ffdm=args.n, n_dbt=0, seed=args.seed, workers=args.workers, ffdm_shape=rows_cols, film=True)
    if args.png8:
        kind = "jpeg8" if args.jpeg else "png8"
        src, cache = to_png8(src, work / f"{kind}-{args.n}-{args.size}-{args.seed}", jpeg=args.jpeg), \
            cache.with_name(f"{cache.name}-{kind}")
    t1 = time.perf_counter()
    if (cache / "manifest.csv").exists():
        # index resumes from a manifest, so a second run would report the first run's boxes:
        # this benchmark's own derived cache goes (its salt key and films stay)
        print(f"note: re-indexing, removed this benchmark's previous cache {cache}")
        shutil.rmtree(cache)
    summary = index_folder(src, cache, workers=args.workers, progress=False)
    t2 = time.perf_counter()
    results = evaluate(src, cache)
    print(f"machine: {machine()}")
    print(f"command: python benchmarks/film_qc.py --n {args.n} --size {args.size} --seed {args.seed} "
          f"--workers {args.workers}{' --png8' if args.png8 else ''}{' --jpeg' if args.jpeg else ''}")
    print(f"{len(results)} films {args.size}: synth {t1 - t0:.1f} s, index {t2 - t1:.1f} s "
          f"({summary['ok']} ok, {summary['skipped']} skipped)")
    counts = qc.count_by_reason([{"status": "ok", **r} for r in results])
    print(f"qc: {qc.format_counts(counts)}")
    box = np.array([r["box_iou"] for r in results])
    mask = np.array([r["mask_iou"] for r in results])
    for name, values in (("box IoU", box), ("mask IoU", mask)):
        print(f"{name}: mean {values.mean():.3f}, median {np.median(values):.3f}, min {values.min():.3f}, "
              f"< 0.9: {int((values < 0.9).sum())}, < 0.5: {int((values < 0.5).sum())}")
    for view in ("CC", "MLO"):
        v = box[[r["view"] == view for r in results]]
        if v.size:
            print(f"  {view}: box IoU mean {v.mean():.3f} min {v.min():.3f} ({v.size} films)")
    wrong = [r for r in results if r["box_iou"] < WRONG_BOX_IOU]
    missed = [r for r in wrong if r["qc"] != qc.SUSPECT]
    flagged_good = [r for r in results if r["box_iou"] >= 0.95 and r["qc"] == qc.SUSPECT]
    print(f"wrong boxes (IoU < {WRONG_BOX_IOU}): {len(wrong)}, of them qc=pass: {len(missed)}; "
          f"good boxes (IoU >= 0.95) flagged suspect: {len(flagged_good)}")
    lesions = [r for r in results if r["lesion_box"] is not None]
    centre_in = sum(_inside(_centre(r["lesion_box"]), r["box"]) for r in lesions)
    whole_in = sum(_inside(r["lesion_box"][:2], r["box"]) and _inside(r["lesion_box"][2:], r["box"]) for r in lesions)
    print(f"lesions inside the manifest's breast box: centre {centre_in} of {len(lesions)}, "
          f"whole lesion box {whole_in} of {len(lesions)}")
    if args.png8:  # no header: the side comes from the image, the view is unknown
        sides = sum(r["laterality_read"] == r["laterality"] for r in results)
        print(f"laterality from the image (no header): {sides} of {len(results)} right")
    else:
        reads = sum(r["laterality_read"] == r["laterality"] and r["view_read"] == r["view"] for r in results)
        patients = len({r["patient_key"] for r in results})
        print(f"laterality and view from PatientID: {reads} of {len(results)} right; {patients} patient keys "
              f"for {len(results) // 4} phantom women")
    if args.per_image:
        for r in results:
            print(f"  {r['image']} {r['laterality']}{r['view']:3s} box {r['box_iou']:.3f} mask {r['mask_iou']:.3f} "
                  f"{r['qc']:7s} {r['qc_reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
