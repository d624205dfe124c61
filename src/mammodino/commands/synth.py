"""Write synthetic mammography phantoms as real DICOM files, plus their labels.

Each FFDM patient gets 4 views (L/R x CC/MLO) of a 3D compressed-breast phantom (power-law
fibroglandular texture thresholded to a BI-RADS density class, Cooper's ligaments, skin,
pectoral muscle on MLO), projected with Beer-Lambert attenuation and quantum noise; about
45 % of breasts hold a mass or a calcification cluster, visible in both views. DBT volumes
are limited-angle projections of their own phantoms reconstructed by shift-and-add, so a
lesion is sharp in its own slices and blurred in the others.

Output:
  OUT/ffdm/ffdm_000000.dcm ...   Digital Mammography X-Ray Image - For Presentation
  OUT/dbt/dbt_000000.dcm ...     Breast Tomosynthesis Image (multi-frame)
  OUT/labels.csv                 image_id, path, patient_id, laterality, view, kind, density,
                                 lesion, lesion_type, lesion_box, lesion_slices, breast_box,
                                 breast_mask
  OUT/.truth/ffdm_000000.png ... with --film: ground-truth breast masks (255 = breast; a
                                 hidden folder, which `index` does not walk)
  OUT/ffdm/rois/ffdm_000000_1_mask.dcm, _1_crop.dcm
                                 with --film, per lesion film: its CBIS-DDSM-style ROI mask
                                 and cropped image (which `index` skips with a reason)

--n is rounded up to whole patients of 4 views. The same --seed gives byte-identical
files. OUT must be new, empty, or an earlier output of this command with the same options.

Examples:
  mammodino synth phantoms/ --n 200 --dbt 20 --seed 0 --workers 2
  mammodino synth films/ --n 40 --film --ffdm-size 1200x720      # CBIS-DDSM-style scanned films
"""

from __future__ import annotations

import argparse
import math
import os
import time

from mammodino.errors import UserError

HELP = "Write synthetic FFDM and DBT phantoms as real DICOM files plus labels.csv."


def _shape(text: str, n: int) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != n or min(parts) <= 0:
        want = "x".join(["N"] * n)
        raise argparse.ArgumentTypeError(f"expected {want} (positive integers), got {text!r}")
    return parts


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (new, empty, or an earlier synth output)")
    parser.add_argument(
        "--n", type=int, default=200, help="FFDM images, rounded up to whole 4-view patients (default 200)"
    )
    parser.add_argument("--dbt", type=int, default=0, help="DBT volumes, one per patient (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores available)")
    parser.add_argument(
        "--ffdm-size", type=lambda t: _shape(t, 2), default=(512, 400), metavar="ROWSxCOLS",
        help="FFDM image size (default 512x400)",
    )
    parser.add_argument(
        "--dbt-size", type=lambda t: _shape(t, 3), default=(32, 256, 200), metavar="SLICESxROWSxCOLS",
        help="DBT volume size (default 32x256x200)",
    )
    parser.add_argument("--mass-scale", type=float, default=1.0,
                        help="multiply mass diameters (default 1: 5-12 %% of the breast; the demo uses 2)")
    parser.add_argument("--detector-fov", action="store_true",
                        help="a detector's field of view: breast ~35-60 %% of the image, burned-in "
                             "laterality/view label and lead marker in the background")
    parser.add_argument("--film", action="store_true",
                        help="FFDM images as digitised film the way CBIS-DDSM stores it: Secondary Capture, "
                             "16/12-bit MONOCHROME2, RLE or uncompressed, view only in PatientID "
                             "(Mass-Training_P_00001_LEFT_CC), bright borders on 1-3 sides, scanner edge strip, "
                             "burned-in label, lead markers, tape, scanner noise; ground-truth breast masks in "
                             "OUT/.truth/ and boxes in labels.csv breast_box")
    parser.add_argument("--tilt", type=float, default=0.0, metavar="DEG",
                        help="with --film: every film laid crooked on a dark scanner bed, 1 to DEG degrees "
                             "either way (masks and lesion boxes turn with it; default 0, upright)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mammodino.synth.generate import generate_phantoms, read_labels

    if args.n < 0 or args.dbt < 0:
        raise UserError(f"--n and --dbt must be >= 0 (got {args.n}, {args.dbt})")
    workers = args.workers if args.workers is not None else _default_workers()
    if workers < 1:
        raise UserError(f"--workers must be >= 1 (got {workers})")
    start = time.perf_counter()
    labels = generate_phantoms(
        args.out,
        n_ffdm=args.n,
        n_dbt=args.dbt,
        seed=args.seed,
        workers=workers,
        ffdm_shape=args.ffdm_size,
        dbt_shape=args.dbt_size,
        progress=not args.quiet,
        mass_scale=args.mass_scale,
        detector_fov=args.detector_fov,
        film=args.film,
        film_tilt=args.tilt,
    )
    elapsed = time.perf_counter() - start
    rows = read_labels(labels)
    n_ffdm = sum(r["kind"] == "ffdm" for r in rows)
    n_dbt = sum(r["kind"] == "dbt" for r in rows)
    n_pos = sum(r["lesion"] == "1" for r in rows)
    patients = math.ceil(n_ffdm / 4)
    # (an earlier identical output is reused, so "ready" rather than "wrote")
    print(
        f"ready: {n_ffdm} FFDM images ({patients} patients) and {n_dbt} DBT volumes "
        f"({n_pos} with a lesion) in {args.out}, {elapsed:.1f} s with {workers} worker(s); labels: {labels}"
    )
    return 0
