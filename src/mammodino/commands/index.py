"""Read a folder of mammograms into a breast-cropped cache and a manifest.

Walks SRC recursively (DICOM FFDM, multi-frame or one-file-per-slice DBT, PNG, TIFF, JPEG,
NPY), crops each image to the breast (+2% margin), mirrors it so the chest wall is on the
left, resizes it to a long side of --size (never up), and writes OUT/images/, OUT/masks/
and OUT/manifest.csv (one row per image or DBT volume, skipped files with their reason).
Re-running the same command resumes: files already in the manifest are not redone.
Patient names and ids are never written; patient/study keys are salted hashes. The cache
carries no file or folder name: source paths, file stems and the salt go to the private key
file OUT.mammodino-key beside the cache (owner-only; copy the cache folder, never the key).

example:
  mammodino index /data/rsna/train_images cache/rsna --workers 8 --labels /data/rsna/train.csv
"""

from __future__ import annotations

import os

HELP = "Read a folder of mammograms into a breast-cropped cache and a manifest."


def add_arguments(parser) -> None:
    parser.add_argument("src", help="folder to index (read only; walked recursively)")
    parser.add_argument("out", help="cache folder to write (created; resumable)")
    parser.add_argument("--size", type=int, default=1024, help="long side of cached images in pixels (default 1024)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: number of cores)")
    parser.add_argument("--labels", default=None,
                        help="CSV with an image id column (file stem) and laterality and/or view columns, "
                             "used when the DICOM tags lack them (e.g. RSNA train.csv), or mini-MIAS Info.txt "
                             "(every film MLO, its side from its number)")
    parser.add_argument("--include-for-processing", action="store_true",
                        help="also read FOR PROCESSING (raw detector) images, with a log + percentile window")
    parser.add_argument("--salt", default=None,
                        help="salt for the pseudonymous ids (default: a random salt kept in the key file OUT.mammodino-key)")
    parser.add_argument("--keep-source", action="store_true",
                        help="also write source paths and file stems into the manifest (they may name patients: "
                             "the cache then must not be shared)")
    parser.add_argument("--max-pixels", type=float, default=None,
                        help="refuse images with more pixels than this, from the header (default 200e6)")
    pec = parser.add_mutually_exclusive_group()
    pec.add_argument("--keep-pectoral", dest="remove_pectoral", action="store_false",
                     help="keep the pectoral muscle in the tissue mask of MLO views (default: it is taken out "
                          "of the mask that crops and masks are drawn from; the crop is the whole breast either way)")
    pec.add_argument("--remove-pectoral", dest="remove_pectoral", action="store_true",
                     help="the default, kept for older scripts")
    parser.set_defaults(remove_pectoral=True)
    parser.add_argument("--whole-image", action="store_true",
                        help="cache the whole image (background, labels, markers) with its breast mask instead of "
                             "the breast box: the input plain DINOv2 trains on, for ablations")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from mammodino.data.indexer import DEFAULT_MAX_PIXELS, format_summary, index_folder

    summary = index_folder(
        args.src,
        args.out,
        size=args.size,
        workers=args.workers,
        labels=args.labels,
        include_for_processing=args.include_for_processing,
        salt=args.salt,
        progress=not args.no_progress,
        max_pixels=int(args.max_pixels) if args.max_pixels else DEFAULT_MAX_PIXELS,
        remove_pectoral=args.remove_pectoral,
        whole_image=args.whole_image,
        keep_source=args.keep_source,
    )
    if args.no_progress:
        print(format_summary(summary, args.src, args.out))
    return 0
