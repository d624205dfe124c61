"""The paper's ablation in miniature, on phantoms.

Pretrains the same cpu-tiny architecture with the same budget and seeds four ways
  plain     : DINOv2 crops and masks anywhere (crops.sampler=random), no slice loss
  +tissue   : breast-tissue-aware crops and masks
  +slice    : DBT adjacent-slice InfoNCE
  both      : MammoDINO
and probes each (plus a random-init encoder of the same architecture) on a held-out labelled
phantom set: lesion presence and density (image level) and slice-level lesion presence in
DBT volumes. Prints one table with the mean and spread over seeds.

    python benchmarks/ablation.py                       # 3 seeds, 200 steps each (~35 min on 2 cores)
    python benchmarks/ablation.py --seeds 0 1 2 --steps 300 --out /tmp/ablation
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = {
    "plain": ["crops.sampler=random", "slice.enabled=false"],
    "+tissue": ["crops.sampler=tissue", "slice.enabled=false"],
    "+slice": ["crops.sampler=random", "slice.enabled=true"],
    "both": ["crops.sampler=tissue", "slice.enabled=true"],
}
TASKS = [("phantom-lesion", "middle"), ("phantom-density", "middle"), ("phantom-dbt-slice-lesion", "all")]


def headline_value(entries) -> float:
    from mammodino.eval.results import headline

    e = headline(entries, levels=("image", "slice"))
    return float(e["value"]) if e else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/mammodino-ablation")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--pretrain-ffdm", type=int, default=160)
    ap.add_argument("--pretrain-dbt", type=int, default=32)
    ap.add_argument("--eval-ffdm", type=int, default=120)
    ap.add_argument("--eval-dbt", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--mass-scale", type=float, default=2.0, help="phantom mass size (the demo's: 2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("overrides", nargs="*", help="extra cpu-tiny overrides for every variant")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from mammodino.config import load_config
    from mammodino.data.indexer import index_folder
    from mammodino.eval.embedding import embed_cache, load_backbone
    from mammodino.eval.probing import run_probe
    from mammodino.models.vit import build_vit
    from mammodino.synth.generate import generate_phantoms
    from mammodino.train.trainer import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pre, ev = out / "phantoms-pretrain", out / "phantoms-eval"
    if not (pre / "labels.csv").exists():
        generate_phantoms(pre, n_ffdm=args.pretrain_ffdm, n_dbt=args.pretrain_dbt, seed=101, workers=2,
                          mass_scale=args.mass_scale)
    if not (ev / "labels.csv").exists():
        generate_phantoms(ev, n_ffdm=args.eval_ffdm, n_dbt=args.eval_dbt, seed=202, workers=2,
                          mass_scale=args.mass_scale)
    for src, dst in ((pre, out / "cache-pretrain"), (ev, out / "cache-eval")):
        index_folder(src, dst, size=args.size, workers=2, progress=False)
    labels = ev / "labels.csv"
    print(f"data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    results: dict[str, dict[str, list[float]]] = {}
    timings = {}

    def probe_all(model, name):
        scores = {}
        for task, slices in TASKS:
            fpath = out / "features" / f"{name}-{slices}.npz"
            if not fpath.exists():
                fs = embed_cache(model, out / "cache-eval", resolution=args.size, dbt_slices=slices, progress=False)
                fs.save(fpath)
            entries = run_probe(fpath, task, labels=labels, label_fractions=[1.0], plots=False, n_boot=200,
                                log=lambda *_: None)
            scores[task] = headline_value(entries)
        return scores

    for seed in args.seeds:
        cfg = load_config("cpu-tiny", [f"train.seed={seed}"] + list(args.overrides))
        m = cfg.model
        torch.manual_seed(seed)
        rand = build_vit(m.arch, patch_size=m.patch_size, num_register_tokens=m.num_register_tokens,
                         layerscale_init=m.layerscale_init, img_size=cfg.crops.global_crop_size).eval()
        for task, v in probe_all(rand, f"random-s{seed}").items():
            results.setdefault("random-init", {}).setdefault(task, []).append(v)
        for variant in args.variants:
            run_dir = out / "runs" / f"{variant.replace('+', 'p')}-s{seed}"
            over = [f"train.seed={seed}", f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}",
                    "train.log_every=10"] + VARIANTS[variant] + list(args.overrides)
            cfg = load_config("cpu-tiny", over)
            t = time.perf_counter()
            if not (run_dir / "checkpoint-last.safetensors").exists():
                pretrain(cfg, [out / "cache-pretrain"], run_dir, progress=False, echo_config=False)
            timings.setdefault(variant, []).append(time.perf_counter() - t)
            model, _ = load_backbone(run_dir)
            scores = probe_all(model, f"{variant.replace('+', 'p')}-s{seed}")
            for task, v in scores.items():
                results.setdefault(variant, {}).setdefault(task, []).append(v)
            print(f"seed {seed} {variant}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), file=sys.stderr, flush=True)

    names = ["random-init"] + list(args.variants)
    header = "| encoder | " + " | ".join(t for t, _ in TASKS) + " |"
    lines = [header, "|---" * (len(TASKS) + 1) + "|"]
    for name in names:
        cells = []
        for task, _ in TASKS:
            vals = np.array(results[name][task], dtype=float)
            cells.append(f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(f"\nAUC (logistic probe, image level; mean ± std over seeds {args.seeds}; {args.steps} steps each)\n")
    print(table)
    print(f"\ntotal {(time.perf_counter() - t0) / 60:.1f} min; seconds per pretraining run: "
          + ", ".join(f"{k} {np.mean(v):.0f}" for k, v in timings.items()))
    (out / "ablation.json").write_text(json.dumps({"results": results, "seeds": args.seeds, "steps": args.steps,
                                                   "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
