"""Linear (logistic regression) and kNN probes on embedded features, split by patient,
with patient-level bootstrap 95 % CIs, at image and breast level, for several label fractions.

Examples:
  mammodino probe features.npz --task rsna-cancer --labels train.csv --out probe-rsna
  mammodino probe features.npz --task vindr-birads --labels breast-level_annotations.csv --out probe-vindr
  mammodino probe features.npz --task cbis-pathology --labels mass_train.csv,mass_test.csv,calc_train.csv,calc_test.csv
  mammodino probe features.npz --task generic --labels my.csv --path-col file --label-col y --patient-col pid
  mammodino probe features.npz --task phantom-lesion --labels phantoms/labels.csv \\
      --perturb resolution=0.5,noise=0.02 --checkpoint runs/tiny --cache cache/

Writes OUT/results.json (one entry per task, probe, level, label fraction, metric),
OUT/results.md, OUT/summary.json (what joined, what did not, notes) and ROC curves
OUT/roc_<task>_<probe>.png, and prints the Markdown table. Tasks: see `--task` choices
and docs/eval.md. Binary tasks report AUC; multi-class tasks macro one-vs-rest AUC
and balanced accuracy. --perturb re-embeds the test images with degraded inputs and applies
the probes trained on clean features (same split); the table gets a "drop" column.
"""

from __future__ import annotations

HELP = "Linear and kNN probes with patient-level splits and bootstrap CIs."


def add_arguments(p) -> None:
    from mammodino.eval.tasks import TASKS

    p.add_argument("features", metavar="FEATURES", help="NPZ written by `mammodino embed`")
    p.add_argument("--task", required=True, choices=sorted(TASKS), metavar="TASK",
                   help="one of: " + ", ".join(TASKS))
    p.add_argument("--labels", action="append", default=None, metavar="TABLE",
                   help="label table (repeat, or comma-separate, for tasks spread over several tables)")
    p.add_argument("--label-fraction", default="0.01,0.1,1", help="fractions of training patients (default 0.01,0.1,1)")
    p.add_argument("--probes", default="logistic,knn", help="comma list of logistic, knn")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (results.json, ROC PNGs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, subsets and bootstrap")
    p.add_argument("--test-size", type=float, default=0.3, help="share of patients in test when the table has no split")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--perturb", default=None, metavar="SPEC", help="e.g. resolution=0.5,noise=0.02")
    p.add_argument("--checkpoint", default=None, help="encoder for --perturb (default: the one recorded in FEATURES)")
    p.add_argument("--cache", default=None, help="cache folder (default: the one recorded in FEATURES)")
    p.add_argument("--batch", type=int, default=32, help="batch size when re-embedding for --perturb")
    p.add_argument("--device", default="auto", help="device when re-embedding (default: cuda when available)")
    g = p.add_argument_group("generic task")
    g.add_argument("--path-col", default=None, help="column with the image path or file stem")
    g.add_argument("--label-col", default=None, help="column with the label")
    g.add_argument("--patient-col", default=None, help="column with the patient id (grouping only)")
    g.add_argument("--laterality-col", default=None)
    g.add_argument("--view-col", default=None)
    g.add_argument("--split-col", default=None, help="column with train/test values to honour")


def run(args) -> int:
    import torch

    from mammodino.errors import UserError
    from mammodino.eval.probing import ProbeOptions, run_probe
    from mammodino.eval.results import markdown_table

    probes = [x.strip() for x in args.probes.split(",") if x.strip()]
    bad = [x for x in probes if x not in ("logistic", "knn")]
    if bad or not probes:
        raise UserError(f"--probes {args.probes!r}: choose from logistic, knn")
    if not 0 < args.test_size < 1:
        raise UserError(f"--test-size {args.test_size}: must be in (0, 1)")
    if args.out:
        from mammodino.outputs import output_folder

        output_folder(args.out, "--out", will_write=("results.json", "results.md", "summary.json", "roc_*.png"))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    options = ProbeOptions(
        label_fractions=args.label_fraction,
        probes=probes,
        seed=args.seed,
        n_boot=args.n_boot,
        test_size=args.test_size,
        perturb=args.perturb,
        checkpoint=args.checkpoint,
        cache=args.cache,
        batch_size=args.batch,
        device=device,
        task_options={
            "path_col": args.path_col,
            "label_col": args.label_col,
            "patient_col": args.patient_col,
            "laterality_col": args.laterality_col,
            "view_col": args.view_col,
            "split_col": args.split_col,
        },
    )
    entries = run_probe(args.features, args.task, args.labels, options, out=args.out)
    print(markdown_table(entries))
    if args.out:
        print(f"\nresults: {args.out}/results.json")
    return 0
