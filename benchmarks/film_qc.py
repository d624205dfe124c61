"""Film phantoms through `mammodino index`: qc counts by reason, breast box and mask IoU
against the ground truth, and whether every wrong box is flagged.

Writes a film phantom set (`synth --film`: Secondary Capture, RLE / uncompressed, bright
borders, edge strips, labels, markers, tape, scanner noise; view only in PatientID), indexes
it with the production command, and compares each row with the phantom's truth:

- box IoU: manifest ``breast_box`` vs labels ``breast_box`` (source pixels);
- mask IoU: the cached mask put back on the source grid vs ``.truth/<id>.png``;
- qc: how many rows are suspect and why, and how many wrong boxes (IoU < 0.8) pass;
- lesions: how many phantom lesions (centre, and whole lesion box) lie inside the breast box.

``--ddsm DIR`` dresses real breasts instead of phantom ones: each of the DDSM films with
manual tissue masks (``../shared/data/ddsm_tissue``) goes through the same film scanner
(:func:`mammodino.synth.markers.film_scan`: borders, label, markers, tape, scanner edge and
noise; every other film mirrored to a left breast) and is written as a CBIS-style Secondary
Capture DICOM. Its truth is the annotated breast (every label but background); since our
skin line and the annotators' differ on clean films too, each row also carries the box that
``segment()`` finds on the clean film (``clean_box``), so the dressing's own cost shows as
the IoU against it.

``--png8`` turns the same films into what older digitised-film collections ship (MIAS-like:
8-bit grey PNG, the film scaled to a long side of 1,024 and centred on a black 1024 x 1024
square, no header at all), with the truth scaled alike, and indexes those instead; with
``--jpeg`` they are JPEG copies (quality 90), whose black frame is no longer one grey level.
``--align left|right`` puts each film against one side of its square instead (mini-MIAS).

Usage:
  python benchmarks/film_qc.py --n 40 --size 1200x720 --workers 2 [--work /tmp/film-qc] [--per-image] [--png8 [--jpeg]]
  python benchmarks/film_qc.py --ddsm ../shared/data/ddsm_tissue [--scale 2] [--seed S] [--png8 [--jpeg]]
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
        # the cached mask of an MLO leaves the muscle out; where the truth knows the muscle, so does the score
        # (an MLO known as such: a PNG without a header has no view, and keeps its muscle)
        muscle_out = t.get("tissue_mask") and row["view"].upper().startswith("MLO")
        gt_tissue = cv2.imread(str(src / t["tissue_mask"]), cv2.IMREAD_GRAYSCALE) if muscle_out else gt_mask
        m_iou = mask_iou(mask_on_source(row, mask, geometry), gt_tissue) if gt_tissue is not None else float("nan")
        box = parse_box(row["breast_box"])
        clean = parse_box(t.get("clean_box") or "")
        out.append({"image": t["image_id"], "view": t["view"], "laterality": t["laterality"],
                    "box_iou": box_iou(box, parse_box(t["breast_box"])),
                    "clean_iou": box_iou(box, clean) if clean else float("nan"),
                    "truth_in_box": share_inside(gt_mask, box) if gt_mask is not None else float("nan"),
                    "gland_in_box": share_inside(cv2.imread(str(src / t["gland_mask"]), cv2.IMREAD_GRAYSCALE), box)
                    if t.get("gland_mask") else float("nan"),
                    "mask_iou": m_iou, "box": parse_box(row["breast_box"]),
                    "lesion_box": parse_box(t["lesion_box"]) if t.get("lesion_box") else None, "qc": row.get("qc", ""), "qc_reason": row.get("qc_reason", ""),
                    "laterality_read": row["laterality"], "view_read": row["view"], "patient_key": row["patient_key"]})
    return out


def share_inside(mask: np.ndarray, box) -> float:
    """Share of the mask's pixels inside the (x0, y0, x1, y1) box: what of the true breast
    the crops can still reach."""
    total = np.count_nonzero(mask)
    if not total:
        return 1.0  # nothing of it to lose
    if box is None:
        return 0.0
    x0, y0, x1, y1 = box
    return np.count_nonzero(mask[max(0, y0):y1, max(0, x0):x1]) / total


def ddsm_breasts(root: Path, scale: float = 1.0):
    """(index, name, float [0, 1] film, label image) for each DDSM film with manual masks,
    chest wall turned to the left (as the film scanner wants it), resized by ``scale``."""
    from mammodino.tissue.orientation import chest_wall_on_left

    films = sorted(root.glob("*/fgt_seg/*.png"))
    if not films:
        raise FileNotFoundError(f"{root}: no */fgt_seg/*.png films (expected the ddsm_tissue folder)")
    for i, path in enumerate(films):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        lab = cv2.imread(str(path.parent.parent / "fgt_seg_labels" / f"{path.stem}_LI.png"), cv2.IMREAD_GRAYSCALE)
        if scale != 1.0:
            size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            lab = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
        if not chest_wall_on_left(lab != 64):
            img, lab = img[:, ::-1], lab[:, ::-1]
        yield i, path.stem, np.ascontiguousarray(img, dtype=np.float32) / 255.0, np.ascontiguousarray(lab)


def dress_ddsm(root: Path, dst: Path, seed: int, scale: float = 1.0) -> Path:
    """Real DDSM breasts as CBIS-DDSM-style film DICOMs (see the module docstring), with
    labels.csv, truth masks and each film's clean-film box mapped onto the dressed grid."""
    from mammodino.synth import dicom_writer as dw
    from mammodino.data.qc import box_text
    from mammodino.synth.generate import FILM_BITS, _mask_box, _write_mask_png
    from mammodino.synth.markers import dress_as_film
    from mammodino.tissue.segmentation import segment

    rows = []
    for i, name, inner, lab in ddsm_breasts(root, scale):
        side = "LR"[i % 2]
        bits = FILM_BITS[i % len(FILM_BITS)]
        dressed = dress_as_film(inner, lab != 64, side, "MLO", np.random.default_rng([seed, i]), bits=bits)
        breast = dressed.breast
        # what the cached mask of an MLO holds (the breast less its muscle), and the
        # fibroglandular tissue (label 192: where lesions arise), on the film's grid
        tissue, gland = dressed.mask((lab != 64) & (lab != 255)), dressed.mask(lab == 192)
        clean = segment(inner, view="MLO").box()
        image_id = f"ddsm_{i:03d}"
        ident = dw.Identity(patient_name="DRESSED^DDSM", patient_id=dw.film_patient_id(i + 1, side, "MLO"),
                            study_uid=dw.make_uid(seed, "ddsm-study", i), series_uid=dw.make_uid(seed, "ddsm-series", i),
                            sop_uid=dw.make_uid(seed, "ddsm-sop", i), frame_of_reference_uid=dw.make_uid(seed, "ddsm-for", i),
                            study_date="20200101", accession=f"DD{i:06d}", instance_number=1)
        dw.write_film(dst / "films" / f"{image_id}.dcm", np.ascontiguousarray(dressed.film), bits, ident, 0.05 / scale,
                      rle=i % 2 == 0)
        _write_mask_png(dst / ".truth" / f"{image_id}.png", breast)
        _write_mask_png(dst / ".truth" / f"{image_id}-tissue.png", tissue)
        _write_mask_png(dst / ".truth" / f"{image_id}-gland.png", gland)
        rows.append({"image_id": image_id, "path": f"films/{image_id}.dcm", "laterality": side, "view": "MLO",
                     "source": name, "breast_box": box_text(_mask_box(breast)),
                     "breast_mask": f".truth/{image_id}.png", "tissue_mask": f".truth/{image_id}-tissue.png",
                     "gland_mask": f".truth/{image_id}-gland.png",
                     "lesion_box": "", "clean_box": box_text(dressed.box(clean))})
    with (dst / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dst


def _centre(box):
    return ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)


def black_point(px: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The film digitised with its black point at its air (MIAS): grey levels up to the air's
    90th percentile become 0, the frame's own black, the rest is stretched back to full
    scale. The air: pixels outside the breast (dilated by 2 %) darker than the breast's 10th
    percentile (not the film's bright borders or labels). The film's air then meets the
    frame at one grey level on most lines, as on the MIAS films (mdb001: its air 0 but for
    the bottom rows) while the breast keeps its dim periphery."""
    r = max(1, round(0.02 * max(px.shape)))
    near = cv2.dilate(breast.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    floor = float(np.percentile(px[breast], 10)) if breast.any() else 1.0
    air = px[(near == 0) & (px < floor)]
    black = float(np.percentile(air, 90)) if air.size else 0.0
    return np.clip((px - black) / max(1e-6, 1.0 - black), 0.0, 1.0)


def to_png8(src: Path, dst: Path, side: int = 1024, jpeg: bool = False, align: str = "centre",
            clip_air: bool = False) -> Path:
    """The film set as 8-bit 1024 x 1024 PNGs (film scaled to the long side, centred on black),
    with labels.csv, breast boxes and truth masks mapped onto the new grid. ``jpeg``: JPEG at
    quality 90 instead (how web copies of such sets ship): the black frame is then no
    longer one grey level, JPEG ringing runs along the film's edge. ``align``: the film
    centred (MIAS) or against the square's left or right side (mini-MIAS). ``clip_air``: the
    film's air digitised to the frame's black (:func:`black_point`)."""
    import pydicom

    from mammodino.data.qc import box_text
    from mammodino.synth.generate import _mask_box
    from mammodino.synth.markers import PaddedSquare

    rows = list(csv.DictReader((src / "labels.csv").open(newline="")))
    (dst / "png").mkdir(parents=True, exist_ok=True)
    (dst / ".truth").mkdir(exist_ok=True)
    out = []
    for r in rows:
        ds = pydicom.dcmread(src / r["path"])
        px = ds.pixel_array.astype(np.float64) / float(2 ** int(ds.BitsStored) - 1)
        if clip_air:
            px = black_point(px, cv2.imread(str(src / r["breast_mask"]), cv2.IMREAD_GRAYSCALE) > 0)
        square = PaddedSquare.fit(px.shape, side, align)
        name = Path(r["path"]).stem
        image_name = f"{name}.jpg" if jpeg else f"{name}.png"
        cv2.imwrite(str(dst / "png" / image_name), square.image(px), [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [])
        moved = {"path": f"png/{image_name}"}
        for key, suffix in (("breast_mask", ""), ("tissue_mask", "-tissue"), ("gland_mask", "-gland")):
            if r.get(key):
                part = square.mask(cv2.imread(str(src / r[key]), cv2.IMREAD_GRAYSCALE) > 0)
                cv2.imwrite(str(dst / ".truth" / f"{name}{suffix}.png"), part.astype(np.uint8) * 255)
                moved[key] = f".truth/{name}{suffix}.png"
                if key == "breast_mask":
                    moved["breast_box"] = box_text(_mask_box(part))
        for key in ("lesion_box", "clean_box"):
            if r.get(key):
                moved[key] = box_text(square.box([float(v) for v in r[key].split()]))
        out.append({**r, **moved})
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
    ap.add_argument("--align", choices=("centre", "left", "right"), default="centre",
                    help="with --png8: the film centred on its square or against one side")
    ap.add_argument("--clip-air", action="store_true",
                    help="with --png8: the film's air digitised to the frame's black, as on MIAS")
    ap.add_argument("--tilt", type=float, default=0.0, help="films laid crooked on the scanner, 1 to TILT degrees")
    ap.add_argument("--ddsm", type=Path, help="dress the real DDSM films of this ddsm_tissue folder instead of phantoms")
    ap.add_argument("--scale", type=float, default=1.0, help="with --ddsm: resize the 960x480 films by this factor first")
    args = ap.parse_args(argv)
    from mammodino.data import qc
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    rows_cols = tuple(int(v) for v in args.size.lower().split("x"))
    work = Path(args.work)
    t0 = time.perf_counter()
    if args.ddsm:
        name = f"ddsm-x{args.scale:g}-{args.seed}"
        src, cache = work / f"films-{name}", work / f"cache-{name}"
        if src.exists():
            shutil.rmtree(src)  # this benchmark's own dressed films, made anew
        dress_ddsm(args.ddsm, src, args.seed, args.scale)
    else:
        tag = f"{args.n}-{args.size}-{args.seed}" + (f"-tilt{args.tilt:g}" if args.tilt else "")
        src, cache = work / f"films-{tag}", work / f"cache-{tag}"
        generate_phantoms(src, n_ffdm=args.n, n_dbt=0, seed=args.seed, workers=args.workers, ffdm_shape=rows_cols,
                          film=True, film_tilt=args.tilt)
    if args.png8:
        kind = "jpeg8" if args.jpeg else "png8"
        kind += "" if args.align == "centre" else f"-{args.align}"
        kind += "-black" if args.clip_air else ""
        src, cache = to_png8(src, work / f"{kind}-{src.name}", jpeg=args.jpeg, align=args.align,
                             clip_air=args.clip_air), \
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
    what = f"--ddsm {args.ddsm} --scale {args.scale:g}" if args.ddsm else f"--n {args.n} --size {args.size}"
    print(f"command: python benchmarks/film_qc.py {what} --seed {args.seed} "
          f"--workers {args.workers}{' --png8' if args.png8 else ''}{' --jpeg' if args.jpeg else ''}"
          f"{f' --align {args.align}' if args.align != 'centre' else ''}{' --clip-air' if args.clip_air else ''}")
    print(f"{len(results)} films {'DDSM dressed' if args.ddsm else args.size}: make {t1 - t0:.1f} s, index {t2 - t1:.1f} s "
          f"({summary['ok']} ok, {summary['skipped']} skipped)")
    counts = qc.count_by_reason([{"status": "ok", **r} for r in results])
    print(f"qc: {qc.format_counts(counts)}")
    box = np.array([r["box_iou"] for r in results])
    mask = np.array([r["mask_iou"] for r in results])
    clean = np.array([r["clean_iou"] for r in results])
    inside = np.array([r["truth_in_box"] for r in results])
    named = [("box IoU", box), ("mask IoU", mask)] + ([("box IoU vs the clean film's", clean)] if args.ddsm else [])
    for name, values in named:
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
    if args.ddsm:  # the annotators' skin line is not ours: the dressing's own harm is against the clean box
        far = [r for r in results if r["clean_iou"] < WRONG_BOX_IOU]
        print(f"boxes far from the clean film's (IoU < {WRONG_BOX_IOU}): {len(far)}, of them qc=pass: "
              f"{sum(r['qc'] != qc.SUSPECT for r in far)}")
        gland = np.array([r["gland_in_box"] for r in results])
        print(f"annotated fibroglandular tissue inside the box: mean {gland.mean():.4f}, min {gland.min():.4f}, "
              f"films < 0.99: {int((gland < 0.99).sum())}")
    print(f"true breast inside the manifest's box: mean {inside.mean():.4f}, min {inside.min():.4f}, "
          f"films < 0.99: {int((inside < 0.99).sum())}")
    lesions = [r for r in results if r["lesion_box"] is not None]
    from lesions_in_box import inside, whole_inside  # the published-lesion check's own: one rule for both

    centre_in = sum(inside(_centre(r["lesion_box"]), r["box"]) for r in lesions)
    whole_in = sum(inside(_centre(r["lesion_box"]), r["box"]) and whole_inside(r["lesion_box"], r["box"])
                   for r in lesions)
    print(f"lesions inside the manifest's breast box: centre {centre_in} of {len(lesions)}, "
          f"whole lesion box {whole_in} of {len(lesions)}")
    if args.png8:  # no header: the side comes from the image, the view is unknown
        sides = sum(r["laterality_read"] == r["laterality"] for r in results)
        print(f"laterality from the image (no header): {sides} of {len(results)} right")
    else:
        reads = sum(r["laterality_read"] == r["laterality"] and r["view_read"] == r["view"] for r in results)
        patients = len({r["patient_key"] for r in results})
        women = len(results) if args.ddsm else len(results) // 4
        print(f"laterality and view from PatientID: {reads} of {len(results)} right; {patients} patient keys "
              f"for {women} women")
    if args.per_image:
        for r in results:
            clean_part = f" clean {r['clean_iou']:.3f} gland in {r['gland_in_box']:.3f}" if args.ddsm else ""
            print(f"  {r['image']} {r['laterality']}{r['view']:3s} box {r['box_iou']:.3f}{clean_part} "
                  f"mask {r['mask_iou']:.3f} in {r['truth_in_box']:.3f} {r['qc']:7s} {r['qc_reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
