"""The paper's ablation in miniature, on detector-FOV phantoms with a DBT-rich pretraining set.

Every variant pretrains the same cpu-tiny model for the same steps and seeds; only the
named factor changes between the rows of a pair:

  dinov2-whole    plain DINOv2 as its users run it: random crops and random masks on the
                  whole image (background, burned-in label, lead marker), no slice loss
  tissue-whole    tissue-aware crops and masks on the SAME whole-image cache
  tissue-crop     tissue-aware crops on the breast-cropped cache (``index`` default)
  mammodino       tissue-crop + the DBT adjacent-slice InfoNCE
  mae, simmim     the masked-image-modelling baselines in the same engine (``method=mae`` /
                  ``simmim``, their papers' recipes) as users run them: whole-image cache,
                  random crops and masks
  mae-tissue,     the same with tissue-aware crops and masks on the breast-cropped cache
  simmim-tissue
  mae-lr,         mae / simmim at cpu-tiny's DINO learning rate (base 0.004): a check that
  simmim-lr       the MIM rows are not only under-trained at their papers' rates

Pairs reported (same seed, same data order): tissue-whole - dinov2-whole (the sampler),
tissue-crop - dinov2-whole (sampler + cropped cache), mammodino - tissue-crop (the slice
loss), mammodino against each baseline, and each MIM variant against its plain row. Every encoder (and a random-init one per seed) is probed through the product's own
embed + probe path on one held-out breast-cropped phantom cache: lesion and density (image
level, logistic probe AUC, patient split), DBT slice-level lesion presence, and adjacent-slice
retrieval (share of DBT slices whose nearest other slice, cosine, among all slices of all
held-out volumes is a true neighbour z +- 1). That retrieval is saturated: adjacent slices of a
phantom reconstruction are near copies, so a random-init encoder scores 0.998 and every
retrieved slice is from the query's own volume (volume identity is free, depth is what is
asked). ``dbt-adjacent-retrieval-noise`` asks the same question of a noisy query (Gaussian
noise, sigma 0.05 of the [0, 1] range: the product's ``noise`` perturbation) against the clean
slices, so the nearest slice is z +- 1 only when the features resolve depth more finely than
they follow the noise. Sigma was fixed on the random-init encoder alone, before any trained
encoder was scored (with noise on both sides: 0.02 -> 0.84, 0.05 -> 0.45, 0.1 -> 0.20).

    python benchmarks/ablation.py --out /tmp/abl --shard 0/2 &   # two processes,
    python benchmarks/ablation.py --out /tmp/abl --shard 1/2 &   # one core each
    python benchmarks/ablation.py --out /tmp/abl --report        # the table (docs/ablation.md)
    python benchmarks/ablation.py --out /tmp/abl --ddsm          # add columns older runs lack
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finetune_eval's DDSM table

VARIANTS = {
    "dinov2-whole": ("whole", ["method=dinov2"]),  # random crops + masks, no slice loss (configs/methods/dinov2.yaml)
    "tissue-whole": ("whole", ["crops.sampler=tissue", "slice.enabled=false"]),
    "tissue-crop": ("crop", ["crops.sampler=tissue", "slice.enabled=false"]),
    "mammodino": ("crop", ["crops.sampler=tissue", "slice.enabled=true"]),
    # the masked-image-modelling baselines in the same engine (configs/methods/{mae,simmim}.yaml):
    # as their users run them (random crops and masks on the whole image), and tissue-aware
    # (crops on tissue, masks on tissue patches) on the breast-cropped cache, like mammodino
    "mae": ("whole", ["method=mae"]),
    "simmim": ("whole", ["method=simmim"]),
    "mae-tissue": ("crop", ["method=mae", "crops.sampler=tissue"]),
    "simmim-tissue": ("crop", ["method=simmim", "crops.sampler=tissue"]),
    # the same at cpu-tiny's DINO learning rate (base 0.004 -> 5e-4 at batch 16, vs the papers'
    # linear rules anchored at 1024: MAE 7.5e-5, SimMIM 2.5e-5): is the MIM row only under-trained?
    "mae-lr": ("whole", ["method=mae", "optim.base_lr=0.004"]),
    "simmim-lr": ("whole", ["method=simmim", "optim.base_lr=0.004"]),
}
PAIRS = [("tissue-whole", "dinov2-whole"), ("tissue-crop", "dinov2-whole"), ("mammodino", "tissue-crop"),
         ("mammodino", "dinov2-whole"), ("mammodino", "mae"), ("mammodino", "simmim"),
         ("mammodino", "mae-tissue"), ("mammodino", "simmim-tissue"),
         ("mae-tissue", "mae"), ("simmim-tissue", "simmim"), ("mae-lr", "mae"), ("simmim-lr", "simmim"),
         ("mammodino", "mae-lr"), ("mammodino", "simmim-lr")]
TASKS = ["phantom-lesion", "phantom-density", "phantom-dbt-slice-lesion", "dbt-adjacent-retrieval",
         "dbt-adjacent-retrieval-noise"]
RETRIEVAL_NOISE = 0.05  # fixed before any trained encoder was scored (random-init: 0.02 -> 0.84, 0.05 -> 0.45, 0.1 -> 0.20)
DDSM_TASKS = ["ddsm-percent-density-spearman", "ddsm-dense-auc"]


def make_data(out: Path, args) -> None:
    """Phantoms (pretraining: unlabeled use; evaluation: labelled) and their caches, once."""
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    pre, ev = out / "phantoms-pretrain", out / "phantoms-eval"
    generate_phantoms(pre, n_ffdm=args.pretrain_ffdm, n_dbt=args.pretrain_dbt, seed=101, workers=args.workers,
                      mass_scale=args.mass_scale, detector_fov=True)
    generate_phantoms(ev, n_ffdm=args.eval_ffdm, n_dbt=args.eval_dbt, seed=202, workers=args.workers,
                      mass_scale=args.mass_scale, detector_fov=True)
    # One fixed salt: the same source gets the same id in every cache and every re-run, so the
    # rows (and the images each step draws) come in one order for the whole-image and the
    # cropped cache, and a campaign repeats exactly. With index's random salt, two runs of
    # campaign 3 differed in data order alone, and that moved rows by up to 0.03.
    salt = "mammodino-ablation"
    index_folder(pre, out / "cache-whole", size=args.size, workers=args.workers, progress=False, whole_image=True,
                 salt=salt)
    index_folder(pre, out / "cache-crop", size=args.size, workers=args.workers, progress=False, salt=salt)
    index_folder(ev, out / "cache-eval", size=args.size, workers=args.workers, progress=False, salt=salt)


def adjacent_slice_retrieval(fs, query=None) -> float:
    """Share of DBT slices whose nearest other slice (cosine, among all slices of all held-out
    volumes in ``fs``) is z +- 1 of the same volume. ``query``: the same DBT slices embedded
    under another view, in the order of ``fs``'s DBT rows (default: ``fs`` itself); the
    query's own slice is excluded from its gallery either way."""
    dbt = np.flatnonzero(fs.n_slices > 1)
    query = fs if query is None else query
    qdbt = np.flatnonzero(query.n_slices > 1)
    if not (np.array_equal(query.id[qdbt], fs.id[dbt]) and np.array_equal(query.slice[qdbt], fs.slice[dbt])):
        raise ValueError("the query view must hold the gallery's DBT slices in the same order")

    def unit(f, rows):
        x = f.features[rows].astype(np.float64)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)

    sim = unit(query, qdbt) @ unit(fs, dbt).T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(1)
    vol, z = fs.id[dbt], fs.slice[dbt]
    return float(np.mean((vol[nn] == vol) & (np.abs(z[nn] - z) == 1)))


class _NoiseView:
    """The product's ``noise`` perturbation with a per-view salt in its key: two views give
    independent noise on the same slice (same realisation for every encoder)."""

    def __init__(self, sigma: float, view: str):
        from mammodino.eval.perturb import Perturbation

        self._p, self._view = Perturbation("noise", sigma), view
        self.label = f"{self._p.label}/{view}"

    def apply(self, img, key: str = ""):
        return self._p.apply(img, f"{key}|{self._view}")


def noisy_retrieval(model, out: Path, args, gallery=None) -> float:
    """``dbt-adjacent-retrieval-noise``: noisy query slices against the clean slices of every
    held-out volume (``gallery``: the clean ``--dbt-slices all`` features, embedded if absent)."""
    from mammodino.data.cache import open_cache
    from mammodino.eval.embedding import embed_cache

    if gallery is None:
        gallery = embed_cache(model, out / "cache-eval", resolution=args.eval_resolution, dbt_slices="all",
                              progress=False)
    ids = [im.id for im in open_cache(out / "cache-eval") if im.is_dbt]
    query = embed_cache(model, out / "cache-eval", resolution=args.eval_resolution, dbt_slices="all", ids=ids,
                        perturbation=_NoiseView(RETRIEVAL_NOISE, "query"), progress=False)
    return adjacent_slice_retrieval(gallery, query)


def probe_encoder(model, name: str, out: Path, args) -> dict:
    from mammodino.eval.embedding import embed_cache
    from mammodino.eval.probing import ProbeOptions, run_probe
    from mammodino.eval.results import headline

    labels = out / "phantoms-eval" / "labels.csv"
    scores = {}
    feats = {}
    for slices in ("middle", "all"):
        feats[slices] = embed_cache(model, out / "cache-eval", resolution=args.eval_resolution, dbt_slices=slices,
                                    progress=False)
    for task in TASKS[:3]:
        fs = feats["all" if task == "phantom-dbt-slice-lesion" else "middle"]
        entries = run_probe(fs, task, labels, ProbeOptions(label_fractions=[1.0], probes=("logistic",), plots=False,
                                                           n_boot=200), log=lambda *_: None)
        e = headline(entries, levels=("image", "slice"))
        scores[task] = float(e["value"]) if e else float("nan")
    scores["dbt-adjacent-retrieval"] = adjacent_slice_retrieval(feats["all"])
    scores["dbt-adjacent-retrieval-noise"] = noisy_retrieval(model, out, args, gallery=feats["all"])
    return scores


def run_job(variant: str, seed: int, out: Path, args) -> dict:
    from mammodino.config import load_config
    from mammodino.models.loading import load_backbone
    from mammodino.train.trainer import pretrain

    res_path = out / "results" / f"{variant}-s{seed}.json"
    if res_path.exists():
        return json.loads(res_path.read_text())
    t0 = time.perf_counter()
    if variant == "random-init":
        cfg = load_config("cpu-tiny", [f"train.seed={seed}"])
        model = _random_init(seed)
        train_s = 0.0
    else:
        cache, over = VARIANTS[variant]
        run_dir = out / "runs" / f"{variant}-s{seed}"
        cfg = load_config("cpu-tiny", [f"train.seed={seed}", f"train.steps={args.steps}",
                                       f"train.checkpoint_every={args.steps}", "train.log_every=10",
                                       "data.num_workers=0"] + over + list(args.overrides))
        if not (run_dir / "checkpoint-last.safetensors").exists():
            pretrain(cfg, [out / f"cache-{cache}"], run_dir, progress=False, echo_config=False)
        train_s = time.perf_counter() - t0
        model, _ = load_backbone(run_dir)
    scores = probe_encoder(model, f"{variant}-s{seed}", out, args)
    scores.update(ddsm_scores(model, out, args))
    result = {"variant": variant, "seed": seed, "scores": scores, "train_s": round(train_s, 1),
              "total_s": round(time.perf_counter() - t0, 1), "steps": args.steps}
    if variant != "random-init":
        from mammodino.train.metrics_log import read_metrics

        rows, _ = read_metrics(out / "runs" / f"{variant}-s{seed}" / "metrics.jsonl")
        last = rows[-1]
        if "dino_global_loss" not in last:  # method mae / simmim: a reconstruction loss, no DINO terms
            last = {**last, "dino_global_loss": float("nan")}
        k = np.log(cfg.dino.n_prototypes)
        n_terms = 2 + 2 * cfg.crops.local_crops_number
        result["dino_global_ce_over_lnK"] = round(last["dino_global_loss"] * n_terms / 2 / k, 3)
        result["teacher_entropy_over_lnK"] = round(last.get("teacher_sample_entropy", float("nan")) / k, 3)
    res_path.parent.mkdir(parents=True, exist_ok=True)
    res_path.write_text(json.dumps(result, indent=1))
    print(f"{variant} s{seed}: " + ", ".join(f"{t} {v:.3f}" for t, v in scores.items())
          + f" ({result['total_s']:.0f} s)", file=sys.stderr, flush=True)
    return result


def ddsm_scores(model, out: Path, args) -> dict:
    """The real-film task ``ddsm-percent-density`` (66 DDSM films, manual masks): Spearman of
    patient-cross-validated ridge predictions of the percent density, and the logistic probe's
    AUC for above / below the median. Empty when the data is absent (the columns are skipped)."""
    from finetune_eval import DDSM, ddsm_task
    from mammodino.eval.embedding import embed_cache
    from mammodino.eval.probing import ProbeOptions, run_probe
    from mammodino.eval.results import headline
    from mammodino.eval.tasks import ddsm_density

    if not ddsm_density.available(DDSM):
        return {}
    cache, _, _ = ddsm_task(out / "ddsm", args.size)
    fs = embed_cache(model, cache, resolution=args.eval_resolution, progress=False)
    rho = ddsm_density.spearman_score(fs, DDSM, cache, n_boot=200)
    entries = run_probe(fs, "ddsm-percent-density", str(DDSM),
                        ProbeOptions(label_fractions=[1.0], probes=("logistic",), plots=False, n_boot=200),
                        log=lambda *_: None)
    e = headline(entries)
    return {"ddsm-percent-density-spearman": rho["value"], "ddsm-dense-auc": float(e["value"]) if e else float("nan")}


def _random_init(seed: int):
    from mammodino.config import load_config
    from mammodino.models.vit import build_vit

    cfg = load_config("cpu-tiny", [f"train.seed={seed}"])
    m = cfg.model
    torch.manual_seed(seed)
    return build_vit(m.arch, patch_size=m.patch_size, num_register_tokens=m.num_register_tokens,
                     layerscale_init=m.layerscale_init, img_size=cfg.crops.global_crop_size).eval()


def add_ddsm(out: Path, args) -> None:
    """Score finished encoders of an older campaign on the columns they lack (the DDSM task,
    the noisy retrieval): a pass after training, from the checkpoints."""
    from mammodino.models.loading import load_backbone

    for path in sorted((out / "results").glob("*.json")):
        r = json.loads(path.read_text())
        missing_ddsm = not all(t in r["scores"] for t in DDSM_TASKS)
        missing_noise = "dbt-adjacent-retrieval-noise" not in r["scores"]
        if not (missing_ddsm or missing_noise):
            continue
        model = _random_init(r["seed"]) if r["variant"] == "random-init" else \
            load_backbone(out / "runs" / f"{r['variant']}-s{r['seed']}")[0]
        if missing_ddsm:
            r["scores"].update(ddsm_scores(model, out, args))
        if missing_noise:
            r["scores"]["dbt-adjacent-retrieval-noise"] = noisy_retrieval(model, out, args)
        path.write_text(json.dumps(r, indent=1))
        print(f"{path.stem}: rescored", file=sys.stderr, flush=True)


def paired_ci(diffs: np.ndarray, n_boot: int = 5000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean paired difference over seeds."""
    rng = np.random.default_rng(seed)
    means = rng.choice(diffs, size=(n_boot, len(diffs)), replace=True).mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _fmt(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.2f}"


def report(out: Path, args) -> str:
    results = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    by = {}
    for r in results:
        by.setdefault(r["variant"], {})[r["seed"]] = r
    names = ["random-init"] + [v for v in VARIANTS if v in by]
    tasks = [t for t in TASKS + DDSM_TASKS if any(t in r["scores"] for r in results)]

    def score(r, t):
        return float(r["scores"].get(t, float("nan")))

    lines = [f"Logistic-probe AUC (retrieval: top-1 share; DDSM Spearman: rho) on held-out detector-FOV phantoms "
             f"and 66 DDSM films; mean ± std over seeds; {args.steps} pretraining steps of cpu-tiny each.", "",
             "| encoder | seeds | " + " | ".join(tasks) + " | DINO CE / ln K | teacher H / ln K | train s |",
             "|---" * (len(tasks) + 5) + "|"]
    for name in names:
        runs = [by[name][s] for s in sorted(by.get(name, {}))]
        if not runs:
            continue
        cells = []
        for t in tasks:
            v = np.array([score(r, t) for r in runs], dtype=float)
            cells.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if np.isfinite(v).any() else "-")
        ce = np.array([r.get("dino_global_ce_over_lnK", np.nan) for r in runs], dtype=float)
        ent = np.array([r.get("teacher_entropy_over_lnK", np.nan) for r in runs], dtype=float)
        train = np.array([r["train_s"] for r in runs], dtype=float)
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells)
                     + f" | {_fmt(np.nanmean(ce) if np.isfinite(ce).any() else np.nan)}"
                     + f" | {_fmt(np.nanmean(ent) if np.isfinite(ent).any() else np.nan)}"
                     + f" | {np.mean(train):.0f} |")
    lines += ["", "Paired differences (same seed): mean [95 % bootstrap CI over seeds]", "",
              "| pair | n | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 2) + "|"]
    for a, b in PAIRS:
        seeds = sorted(set(by.get(a, {})) & set(by.get(b, {})))
        if not seeds:
            continue
        cells = []
        for t in tasks:
            d = np.array([score(by[a][s], t) - score(by[b][s], t) for s in seeds], dtype=float)
            if not np.isfinite(d).all():
                cells.append("-")
                continue
            lo, hi = paired_ci(d)
            cells.append(f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")
        lines.append(f"| {a} - {b} | {len(seeds)} | " + " | ".join(cells) + " |")
    train = [r["train_s"] for r in results if r["variant"] != "random-init"]
    if train:
        from mammodino.machine import one_line

        lines += ["", f"Pretraining wall time per run: {np.mean(train):.0f} s (mean of {len(train)}); "
                  f"machine: {one_line()}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/mammodino-ablation")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--pretrain-ffdm", type=int, default=80)
    ap.add_argument("--pretrain-dbt", type=int, default=200)
    ap.add_argument("--eval-ffdm", type=int, default=120)
    ap.add_argument("--eval-dbt", type=int, default=60)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--eval-resolution", type=int, default=128)
    ap.add_argument("--mass-scale", type=float, default=2.0, help="phantom mass size (the demo's: 2)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th job starting at i (parallel processes)")
    ap.add_argument("--data-only", action="store_true")
    ap.add_argument("--report", action="store_true", help="print (and write) the table of the finished jobs")
    ap.add_argument("--ddsm", action="store_true",
                    help="score the finished encoders on the columns they lack (DDSM films, noisy retrieval)")
    ap.add_argument("overrides", nargs="*", help="extra cpu-tiny overrides for every variant")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.ddsm:
        add_ddsm(out, args)
        return 0
    if args.report:
        table = report(out, args)
        (out / "ablation.md").write_text(table + "\n")
        print(table)
        return 0
    t0 = time.perf_counter()
    if not (out / "cache-eval" / "manifest.csv").exists():
        make_data(out, args)
        print(f"data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.data_only:
        return 0
    i, n = (int(v) for v in args.shard.split("/"))
    # seed-major order, so a campaign cut short still holds whole paired seeds
    jobs = [(v, s) for s in args.seeds for v in ["random-init"] + list(args.variants)]
    for v, s in jobs[i::n]:
        run_job(v, s, out, args)
    print(f"shard {args.shard} done in {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
