"""Score new mammograms with a fine-tuned model: one CSV row per image, breast and exam.

Examples:
  mammodino predict runs/ft-cancer /archive/new-dicoms --out scores.csv --workers 8
  mammodino predict runs/ft-cancer cache/ --out scores.csv                # an indexed cache
  mammodino predict runs/ft-cancer dicoms/ --out scores.csv --cache-dir cache-new/ --salt $SALT

MODEL is a folder written by `mammodino finetune`. SRC is a folder of DICOM / PNG / TIFF /
NPY files (read, windowed, segmented, oriented and cropped exactly as `mammodino index`
does, in parallel; a file that cannot be read becomes a row with status skipped and its
reason) or an indexed cache. Rows: level image (id, pseudonymous patient_key / study_key,
laterality, view, status, reason, p_<class>), breast (mean over the breast's views) and exam
(binary / multi-label: the most suspicious breast; multi-class: the mean of the breasts;
--exam-score max|mean to choose).
Probabilities are calibrated on the fine-tune's validation split. No raw patient id or path
is written unless --keep-source. An existing --out is never overwritten.
"""

from __future__ import annotations

HELP = "Score new mammograms with a fine-tuned model (CSV: image, breast, exam rows)."


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="folder written by `mammodino finetune`")
    p.add_argument("src", metavar="SRC", help="folder of DICOM/PNG/TIFF/NPY files, or an indexed cache")
    p.add_argument("--out", required=True, metavar="CSV", help="scores CSV (must not exist)")
    p.add_argument("--workers", type=int, default=1, help="processes for reading/decoding (default 1)")
    p.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 autocast on GPU, fp32 on CPU")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="keep the decoded cache here (a re-run skips decoding); default: a temporary folder")
    p.add_argument("--salt", default=None, help="pseudonym salt, to get the same ids as another cache")
    p.add_argument("--keep-source", action="store_true", help="add the source path column (may name patients)")
    p.add_argument("--exam-score", choices=["auto", "max", "mean"], default="auto",
                   help="exam row: max (most suspicious breast) or mean of the breasts; auto: max for binary and "
                        "multi-label models, mean for multi-class")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all usable cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from mammodino.errors import UserError
    from mammodino.eval.embedding import set_threads
    from mammodino.finetune.predict import predict

    if args.batch < 1:
        raise UserError(f"--batch {args.batch}: must be at least 1")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    set_threads(args.threads)
    s = predict(args.model, args.src, args.out, cache_dir=args.cache_dir, workers=args.workers, batch_size=args.batch,
                device=args.device, precision=args.precision, keep_source=args.keep_source, salt=args.salt, exam_score=args.exam_score,
                progress=not args.no_progress)
    print(f"scored {s['images']} images ({s['skipped']} skipped) in {s['seconds']:.1f} s "
          f"({s['images_per_s']:.2f} images/s, {s['device']}) -> {s['out']}")
    for reason, n in sorted(s.get("reasons", {}).items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n:5d}: {reason}")
    return 0
