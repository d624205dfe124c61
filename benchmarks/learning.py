"""Does the DINO objective learn? Learning curves of cpu-tiny runs, side by side.

For each run: DINO CLS cross-entropy / ln K (global-global pairs), the teacher's per-sample
entropy / ln K (1.0 = uniform targets: nothing to learn), prototypes in use (perplexity of
the batch-mean assignment), std of the teacher CLS features, iBOT loss; and, at every kept
checkpoint, kNN and logistic-probe lesion AUC on held-out labelled phantoms. Writes one PNG
of the curves and prints a Markdown table.

    # train two runs (old and new cpu-tiny head settings) and compare them
    python benchmarks/learning.py --out /tmp/learn --steps 1000 --probe-every 250 \\
        --run before:model.layerscale_init=0.1,dino.bottleneck_dim=128,optim.warmup_teacher_temp=0.04,optim.teacher_temp=0.07 \\
        --run after:
    # or plot runs that already exist (their metrics.jsonl)
    python benchmarks/learning.py --out /tmp/learn --existing before=/tmp/a after=/tmp/b
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch


def curves(run_dir: Path) -> dict:
    """The logged learning signals of one run, normalised by ln K."""
    from omegaconf import OmegaConf

    from mammodino.train.metrics_log import read_metrics

    cfg = OmegaConf.load(run_dir / "config.yaml")
    ln_k = math.log(cfg.dino.n_prototypes)
    n_terms = 2 + 2 * int(cfg.crops.local_crops_number)
    rows, _ = read_metrics(run_dir / "metrics.jsonl")
    get = lambda k, f=1.0: np.array([r.get(k, float("nan")) * f for r in rows], dtype=float)  # noqa: E731
    return {
        "step": get("step"),
        "dino_ce_over_lnK": get("dino_global_loss", n_terms / 2 / ln_k),
        "teacher_entropy_over_lnK": get("teacher_sample_entropy", 1 / ln_k),
        "prototypes_in_use": get("prototypes_in_use"),
        "cls_std": get("cls_std"),
        "ibot_over_lnK": get("ibot_loss", 1 / ln_k),
        "grad_norm": get("grad_norm"),  # all parameters, before clipping: does gradient reach them
    }


def probe_checkpoints(run_dir: Path, cache: Path, labels: Path, resolution: int) -> list[dict]:
    """kNN and logistic lesion AUC of the teacher at every kept checkpoint and at the end."""
    from mammodino.eval.embedding import embed_cache
    from mammodino.models.loading import load_backbone
    from mammodino.eval.probing import ProbeOptions, run_probe

    out = []
    paths = sorted(run_dir.glob("checkpoint-[0-9]*.safetensors")) + [run_dir / "checkpoint-last.safetensors"]
    for path in paths:
        if not path.exists():
            continue
        model, info = load_backbone(path)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            step = json.loads(fh.metadata()["state"])["step"]
        fs = embed_cache(model, cache, resolution=resolution, progress=False)
        entries = run_probe(fs, "phantom-lesion", labels, ProbeOptions(label_fractions=[1.0], plots=False, n_boot=200),
                            log=lambda *_: None)
        row = {"step": int(step)}
        for e in entries:
            if e.get("level", "image") == "image" and e["metric"] == "auc" and not e.get("perturbation"):
                row[e["probe"]] = float(e["value"])
        out.append(row)
    return sorted({r["step"]: r for r in out}.values(), key=lambda r: r["step"])


def plot(all_curves: dict, probes: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["dino_ce_over_lnK", "teacher_entropy_over_lnK", "prototypes_in_use", "cls_std", "ibot_over_lnK"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, key in zip(axes.flat, keys):
        for name, c in all_curves.items():
            ax.plot(c["step"], c[key], label=name)
        ax.set_title(key)
        ax.set_xlabel("step")
        if key.endswith("lnK"):
            ax.axhline(1.0, color="grey", lw=0.5, ls="--")
            ax.set_ylim(0, 1.05)
    ax = axes.flat[5]
    for name, rows in probes.items():
        for probe in ("logistic", "knn"):
            pts = [(r["step"], r[probe]) for r in rows if probe in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f"{name} {probe}")
    ax.set_title("lesion AUC (held-out phantoms)")
    ax.set_xlabel("step")
    for ax in axes.flat:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(all_curves: dict, probes: dict) -> str:
    lines = ["| run | steps | DINO CE / ln K | teacher H / ln K | prototypes in use | CLS std | grad norm | lesion AUC (logistic / kNN) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, c in all_curves.items():
        tail = slice(-3, None)  # mean of the last three logged steps
        p = probes.get(name) or [{}]
        auc = f"{p[-1].get('logistic', float('nan')):.3f} / {p[-1].get('knn', float('nan')):.3f}"
        lines.append(f"| {name} | {int(c['step'][-1])} | {np.nanmean(c['dino_ce_over_lnK'][tail]):.3f} | "
                     f"{np.nanmean(c['teacher_entropy_over_lnK'][tail]):.3f} | {np.nanmean(c['prototypes_in_use'][tail]):.0f} | "
                     f"{np.nanmean(c['cls_std'][tail]):.3f} | {np.nanmean(c.get('grad_norm', [np.nan])[tail]):.1f} | {auc} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/mammodino-learning")
    ap.add_argument("--run", action="append", default=[], help="NAME:override,override (train this run)")
    ap.add_argument("--existing", nargs="*", default=[], help="NAME=RUN_DIR (plot a finished run)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--probe-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--no-probe", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from mammodino.config import load_config
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms
    from mammodino.train.trainer import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ev = out / "phantoms-eval"
    runs = {name: Path(d) for name, d in (e.split("=", 1) for e in args.existing)}
    if args.run or not args.no_probe:
        generate_phantoms(ev, n_ffdm=160, n_dbt=0, seed=202, mass_scale=2.0)
        if not (out / "cache-eval" / "manifest.csv").exists():
            index_folder(ev, out / "cache-eval", size=256, progress=False, salt="mammodino-learning")
    if args.run:
        pre = out / "phantoms-pretrain"
        generate_phantoms(pre, n_ffdm=160, n_dbt=32, seed=101, mass_scale=2.0)
        if not (out / "cache-pretrain" / "manifest.csv").exists():
            index_folder(pre, out / "cache-pretrain", size=256, progress=False, salt="mammodino-learning")
    for spec in args.run:
        name, _, over = spec.partition(":")
        run_dir = out / "runs" / name
        cfg = load_config("cpu-tiny", [f"train.seed={args.seed}", f"train.steps={args.steps}",
                                       f"train.keep_every={args.probe_every}", f"train.checkpoint_every={args.probe_every}",
                                       "train.log_every=10", "data.num_workers=0"] + [o for o in over.split(",") if o])
        t0 = time.perf_counter()
        if not (run_dir / "checkpoint-last.safetensors").exists():
            pretrain(cfg, [out / "cache-pretrain"], run_dir, progress=False, echo_config=False)
        print(f"{name}: {args.steps} steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        runs[name] = run_dir
    all_curves = {name: curves(d) for name, d in runs.items()}
    probes = {} if args.no_probe else {
        name: probe_checkpoints(d, out / "cache-eval", ev / "labels.csv", args.resolution) for name, d in runs.items()}
    plot(all_curves, probes, out / "learning_curves.png")
    text = table(all_curves, probes)
    (out / "learning.md").write_text(text + "\n")
    (out / "learning.json").write_text(json.dumps({"probes": probes}, indent=1))
    print(text)
    print(f"\ncurves: {out / 'learning_curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
