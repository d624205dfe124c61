"""Fine-tune an encoder + classification head on a labelled task of an indexed cache.

Examples:
  mammodino finetune runs/s cache/ --task rsna-cancer --labels train.csv --out runs/s/finetune-cancer
  mammodino finetune runs/s cache/ train.steps=4000 optim.lr=5e-5 --task rsna-cancer --labels train.csv --out ft2
  mammodino finetune runs/tiny cache/ --task phantom-lesion --labels phantoms/labels.csv --out ft --config cpu-tiny
  mammodino finetune encoder/ cache/ --task vindr-density --labels breast-level_annotations.csv --out ft-density \\
      --head linear --mode partial --resolution 1024
  mammodino finetune runs/s cache/ --task vindr-mass,vindr-calcification --labels finding_annotations.csv --out ft-ml
  mammodino finetune --random-init --arch tiny --patch-size 16 cache/ --task phantom-lesion --labels labels.csv --out ft-rand
  mammodino finetune runs/s cache/ --task rsna-cancer --labels train.csv --out ft --resume      # after a kill
  torchrun --nproc_per_node 4 -m mammodino finetune runs/b cache/ --task rsna-cancer --labels train.csv --out ft

ENCODER follows `embed`'s rules: a run folder or training checkpoint (--which teacher|student),
an exported encoder, or a local DINOv2 weight file; --random-init --arch A for the
from-scratch baseline. The task adapters, the label join and the patient-level split are
`probe`'s: with the same --task, table and seed the test patients are the same, and the
validation patients (early stopping, calibration) are those the logistic probe picks C on.
Several comma-separated binary tasks train one multi-label model (one sigmoid per task).

Writes OUT/model.safetensors + config.json (what `mammodino predict` reads), results.json /
results.md / summary.json (AUC or macro AUC + balanced accuracy, patient-bootstrap 95 % CIs,
image and breast level; calibration), ROC and training-curve PNGs, metrics.jsonl,
config.yaml and checkpoint-last.safetensors / best.safetensors. key=value overrides (right
after the paths) set any option of configs/finetune/default.yaml; unknown keys fail.
"""

from __future__ import annotations

HELP = "Fine-tune an encoder + head on a labelled task (exact resume, calibrated probabilities)."


def add_arguments(p) -> None:
    from mammodino.finetune.config import list_finetune_presets

    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="ENCODER CACHE (with --random-init: CACHE), then any key=value config overrides")
    p.add_argument("--task", required=True, metavar="TASK", help="task name as in `probe` (comma list: multi-label)")
    p.add_argument("--labels", action="append", default=None, metavar="TABLE",
                   help="label table (repeat, or comma-separate, for tasks spread over several tables)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (model, results, checkpoints)")
    p.add_argument("--config", default=None,
                   help=f"preset ({', '.join(list_finetune_presets())}) or a YAML file; default: configs/finetune/default.yaml")
    p.add_argument("--head", choices=["linear", "attention"], default=None, help="head (model.head)")
    p.add_argument("--mode", choices=["full", "partial", "frozen"], default=None, help="what trains (finetune.mode)")
    p.add_argument("--resolution", type=int, default=None, help="input long side in pixels (data.resolution)")
    p.add_argument("--balance", choices=["sampler", "loss", "none"], default=None, help="rare-class handling (data.balance)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (train.steps)")
    p.add_argument("--seed", type=int, default=None, help="seed of split, head, batches (train.seed; default 0)")
    p.add_argument("--label-fraction", type=float, default=1.0, help="fraction of training patients used (as probe)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint-last.safetensors")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP", help="save and stop after this step")
    p.add_argument("--allow-config-change", action="store_true",
                   help="--resume even when options that change the experiment differ from the checkpoint's")
    p.add_argument("--which", choices=["teacher", "student"], default="teacher", help="network of a training checkpoint")
    p.add_argument("--random-init", action="store_true", help="an untrained encoder (the from-scratch baseline)")
    p.add_argument("--arch", choices=["tiny", "small", "base", "large"], default=None, help="ViT size for --random-init")
    p.add_argument("--patch-size", type=int, default=None, help="patch size for --random-init (default 16)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all usable cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("generic task")
    g.add_argument("--path-col", default=None)
    g.add_argument("--label-col", default=None)
    g.add_argument("--patient-col", default=None)
    g.add_argument("--laterality-col", default=None)
    g.add_argument("--view-col", default=None)
    g.add_argument("--split-col", default=None)


def run(args) -> int:
    from mammodino.errors import UserError
    from mammodino.eval.embedding import set_threads
    from mammodino.eval.results import markdown_table
    from mammodino.eval.tasks import TASKS
    from mammodino.finetune import finetune, load_finetune_config

    overrides = [x for x in args.paths if "=" in x]
    paths = [x for x in args.paths if "=" not in x]
    expected = 1 if args.random_init else 2
    if len(paths) != expected:
        want = "CACHE" if args.random_init else "ENCODER CACHE"
        raise UserError(f"finetune expects {want}, got {len(paths)} path(s): {' '.join(paths) or '(none)'}")
    tasks = [t.strip() for t in args.task.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise UserError(f"--task {args.task!r}: unknown task {', '.join(unknown) or '(none)'}; known: {', '.join(TASKS)}")
    if not 0 < args.label_fraction <= 1:
        raise UserError(f"--label-fraction {args.label_fraction}: must be in (0, 1]")
    for flag, key in (("head", "model.head"), ("mode", "finetune.mode"), ("resolution", "data.resolution"),
                      ("balance", "data.balance"), ("steps", "train.steps"), ("seed", "train.seed")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    cfg = load_finetune_config(args.config, overrides)
    set_threads(args.threads)
    result = finetune(None if args.random_init else paths[0], paths[-1], tasks, args.labels, args.out, cfg,
                      random_init=args.random_init, arch=args.arch, patch_size=args.patch_size, which=args.which,
                      label_fraction=args.label_fraction, resume=args.resume, progress=not args.no_progress,
                      stop_at=args.stop_at, device=args.device, allow_config_change=args.allow_config_change,
                      task_options={"path_col": args.path_col, "label_col": args.label_col,
                                    "patient_col": args.patient_col, "laterality_col": args.laterality_col,
                                    "view_col": args.view_col, "split_col": args.split_col})
    import os

    if os.environ.get("RANK", "0") != "0":
        return 0
    if "stopped_at" in result:
        print(f"stopped after step {result['stopped_at']}; continue with --resume (out {args.out})")
        return 0
    print(markdown_table(result["entries"]))
    cal = result["summary"]["calibration"]
    if cal.get("fitted"):
        print(f"\ncalibration (validation split): NLL {cal['val_nll_before']:.4f} -> {cal['val_nll_after']:.4f}; "
              f"test ECE {cal['test_ece_before']:.4f} -> {cal['test_ece_after']:.4f}")
    print(f"model: {args.out}/model.safetensors + config.json; results: {args.out}/results.json")
    return 0
