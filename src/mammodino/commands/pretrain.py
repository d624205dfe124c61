"""Self-supervised pretraining on one or more indexed caches.

Examples:
  mammodino pretrain --config cpu-tiny --data cache/ --out runs/tiny
  mammodino pretrain --config cpu-tiny --data cache/ --out runs/tiny --resume
  torchrun --nproc_per_node 8 -m mammodino pretrain --config vit-base --data a/ --data b/ --out runs/b train.steps=50000

The run folder gets checkpoint-last.safetensors (+ periodic copies with train.keep_every),
metrics.jsonl, config.yaml (the resolved config), crop_preview.png and loss_curve.png.
--resume continues from the newest checkpoint that verifies (a damaged one is reported and
kept aside) and refuses a config that changes the experiment unless --allow-config-change.
Overrides are key=value pairs of the config (see `configs/default.yaml`); unknown keys fail.
"""

from __future__ import annotations

HELP = "Self-supervised pretraining (DINO + iBOT + KoLeo + DBT slice loss) on caches."


def add_arguments(p) -> None:
    p.add_argument("--config", default="cpu-tiny", help="preset name (cpu-tiny, vit-small, vit-base, vit-large, from-dinov2) or a YAML file")
    p.add_argument("--data", action="append", required=True, metavar="CACHE", help="indexed cache folder (repeat for several)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (checkpoints, metrics, config)")
    p.add_argument("--steps", type=int, default=None, help="total optimisation steps (overrides train.steps)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="save and stop after this step (the schedules still span train.steps); continue later with --resume, "
                        "e.g. on a preemptible or time-limited job")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: accept a config that changes the experiment (model, data, seed, batch ...); "
                        "the changes are logged and the previous config.yaml is kept")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.batch_size=32")


def run(args) -> int:
    from mammodino.config import load_config
    from mammodino.train.trainer import pretrain

    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    cfg = load_config(args.config, overrides)
    last = pretrain(cfg, args.data, args.out, resume=args.resume, progress=not args.no_progress,
                    stop_at=args.stop_at, allow_config_change=args.allow_config_change)
    import os

    if last and os.environ.get("RANK", "0") == "0":
        shown = ", ".join(f"{k}={last[k]:.4g}" for k in ("loss", "dino_loss", "ibot_loss", "koleo_loss", "slice_loss") if k in last)
        print(f"done: step {last['step']}, {shown}; run folder {args.out}")
    return 0
