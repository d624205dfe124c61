"""``mammodino demo``: the whole product on built-in phantoms, in about ten minutes on 2 cores.

Two phantom sets are generated with different seeds: an unlabeled one to pretrain on and a
labelled one to evaluate on (probes split it by patient). The pretrained encoder is compared
with a random-init encoder of the same architecture through the same embed/probe path, so the
table shows what pretraining bought.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from mammodino import machine
from mammodino.errors import UserError
from mammodino.eval.results import headline

TASKS = ("phantom-lesion", "phantom-density")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def choose_out_dir(out: str | Path | None) -> Path:
    """A fresh folder: an explicit --out must be empty or new; the default picks the next free name."""
    if out is not None:
        path = Path(out)
        if path.exists() and any(path.iterdir()):
            raise UserError(f"--out {path}: the folder is not empty; choose a new one (nothing is overwritten)")
        return path
    base = Path("mammodino-demo")
    path, n = base, 1
    while path.exists() and any(path.iterdir()):
        n += 1
        path = Path(f"{base}-{n}")
    return path


def plan_sizes(minutes: float) -> dict:
    """Phantom counts for the budget: more data only when there is time to learn from it."""
    scale = max(0.5, min(4.0, minutes / 10.0))
    return {
        "pretrain_ffdm": int(round(160 * scale / 4)) * 4,
        "pretrain_dbt": max(8, int(round(16 * scale))),
        # embedding and probing are cheap next to pretraining: 100 evaluation patients at the
        # 10-minute budget narrow the AUC intervals (~+-0.05 instead of ~+-0.1 at 60 patients)
        "eval_ffdm": int(round(400 * min(scale, 2.0) / 4)) * 4,
        "eval_dbt": 24,
    }


# Demo phantoms carry masses twice the default size (10-24 % of the breast): at the demo's
# 256-px cache and budget of a few CPU-minutes, default-size masses in dense breasts are
# beyond what any encoder here learns (README, "Evidence").
DEMO_MASS_SCALE = 2.0

# The demo's cache long side (index, embed and attention all use it).
DEMO_SIZE = 256


def calibrate_step_seconds(cfg, cache: Path, n_steps: int = 5, warmup: int = 3) -> float:
    """Seconds per optimisation step of this config on this machine: the median of
    ``n_steps`` steps of the trainer's own step (``train.step.TrainStep``) fed by the training
    loader, after ``warmup`` steps that pay for worker start-up and first-call costs (with one
    warm-up step, 3 timed steps measured 0.48 s where the run then went at ~0.35 s/step on an
    AMD EPYC in bf16: the demo used 6.3 of its 10 minutes)."""
    from mammodino.data.dataset import PretrainDataset, collate
    from mammodino.data.batch_plan import BatchPlan
    from mammodino.train import distributed as dist
    from mammodino.train.loader import build_loader
    from mammodino.train.methods import build_model
    from mammodino.train.step import build_train_step

    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(cfg, {"train": {"steps": max(int(cfg.train.steps), n_steps + warmup)}})
    device = dist.setup()
    dataset = PretrainDataset([str(cache)], cfg)
    plan = BatchPlan(dataset, cfg)
    train_step = build_train_step(cfg, build_model(cfg).to(device), device)
    loader = build_loader(dataset, plan, cfg, 0, dist.rank(), dist.world_size(), collate)
    batches = iter(loader)
    times = []
    try:
        for step in range(n_steps + warmup):
            t0 = time.perf_counter()
            train_step(step, batches)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    finally:
        del batches
    timed = sorted(times[warmup:])
    return float(timed[len(timed) // 2])


def random_init_encoder(cfg, seed: int):
    """The demo's untrained baseline, built through ``load_backbone`` so that ``probe --perturb``
    can rebuild exactly the same encoder from the description stored with the features."""
    from mammodino.models.loading import load_backbone

    m = cfg.model
    return load_backbone(random_init=True, arch=m.arch, patch_size=m.patch_size,
                         num_register_tokens=m.num_register_tokens, seed=seed,
                         layerscale_init=m.layerscale_init, img_size=cfg.crops.global_crop_size)


def run_demo(out=None, minutes: float = 10.0, seed: int = 0, workers: int | None = None,
             progress: bool = True, overrides: tuple = ()) -> dict:
    """The seven stages in order (each helper prints its own ``[k/7]`` line); returns the
    summary also written to ``out/summary.json``."""
    if minutes <= 0:
        raise UserError(f"--minutes {minutes}: must be > 0")
    t_start = time.perf_counter()
    out = choose_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _say(f"mammodino demo -> {out}  (budget ~{minutes:g} min, {workers} worker(s), device {device})")

    eval_labels = _make_phantoms(out, plan_sizes(minutes), seed, workers, progress)
    _index_phantoms(out, workers, progress)
    cfg, steps, step_s = _pretrain(out, minutes, t_start, seed, overrides, progress)
    run_dir = out / "run"
    pretrained, feats = _embed(out, run_dir, cfg, seed, device, progress)

    _say("[5/7] probe held-out labelled phantoms (patient-level split, bootstrap CIs)")
    summary = {"tasks": {}, "steps": steps, "step_seconds": round(step_s, 4),
               "machine": machine.describe(), "out": str(out)}
    summary["tasks"] = _probe(feats, eval_labels, run_dir, seed)
    att_dir, pngs = _attention(out, run_dir, pretrained[0], device)  # load_backbone gives (model, info)

    _say("[7/7] report")
    from mammodino.eval.report import write_report

    report = write_report(run_dir, attention_dirs=[att_dir])
    summary["report"] = str(report)
    summary["attention_pngs"] = [str(p) for p in pngs]
    summary["minutes"] = round((time.perf_counter() - t_start) / 60, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print_result(summary, out, run_dir, att_dir, report, steps, step_s)
    return summary


def _make_phantoms(out: Path, sizes: dict, seed: int, workers: int, progress: bool):
    """Stage 1: the unlabeled pretraining set and the labelled evaluation set (other seeds);
    returns the evaluation label table."""
    from mammodino.synth.generate import generate_phantoms

    _say("[1/7] synthetic phantoms (unlabeled pretraining set + labelled evaluation set)")
    generate_phantoms(out / "phantoms" / "pretrain", n_ffdm=sizes["pretrain_ffdm"], n_dbt=sizes["pretrain_dbt"],
                      seed=seed * 2 + 1, workers=workers, mass_scale=DEMO_MASS_SCALE, progress=progress)
    return generate_phantoms(out / "phantoms" / "eval", n_ffdm=sizes["eval_ffdm"], n_dbt=sizes["eval_dbt"],
                             seed=seed * 2 + 2, workers=workers, mass_scale=DEMO_MASS_SCALE, progress=progress)


def _index_phantoms(out: Path, workers: int, progress: bool) -> None:
    """Stage 2: both phantom sets through ``index`` into ``out/cache``."""
    from mammodino.data.indexer import index_folder

    _say("[2/7] index (segment, orient, crop, cache)")
    for part in ("pretrain", "eval"):
        summary = index_folder(out / "phantoms" / part, out / "cache" / part, size=DEMO_SIZE, workers=workers,
                               progress=progress)
        _say(f"      {part}: {summary['ok']} ok, {summary['skipped']} skipped")


def _pretrain(out: Path, minutes: float, t_start: float, seed: int, overrides: tuple, progress: bool):
    """Stage 3: pretrain cpu-tiny for as many steps as ~72 % of the remaining budget holds at
    the measured step time; returns ``(cfg, steps, step_seconds)``."""
    from mammodino.config import load_config
    from mammodino.train.trainer import pretrain

    cfg = load_config("cpu-tiny", [f"train.seed={seed}", *overrides])
    budget = minutes * 60.0 - (time.perf_counter() - t_start)
    train_budget = max(30.0, 0.72 * budget)
    step_s = calibrate_step_seconds(cfg, out / "cache" / "pretrain")
    steps = int(max(20, min(20000, train_budget / max(step_s, 1e-3))))
    cfg = load_config("cpu-tiny", [f"train.seed={seed}", f"train.steps={steps}",
                                   f"train.checkpoint_every={max(10, steps // 10)}", *overrides])
    steps = int(cfg.train.steps)  # a train.steps override wins over the budget: report what trains
    _say(f"[3/7] pretrain cpu-tiny: {steps} steps (~{step_s:.2f} s/step measured, ~{steps * step_s / 60:.1f} min)")
    pretrain(cfg, [out / "cache" / "pretrain"], out / "run", progress=progress, echo_config=False)
    return cfg, steps, step_s


def _embed(out: Path, run_dir: Path, cfg, seed: int, device: str, progress: bool):
    """Stage 4: features of the evaluation cache from the pretrained teacher and from a
    random-init encoder; returns ``(pretrained, {name: features path})``."""
    from mammodino.eval.embedding import embed_cache
    from mammodino.models.loading import load_backbone

    _say("[4/7] embed the evaluation set: pretrained teacher and random-init encoder")
    pretrained = load_backbone(run_dir)
    random_init = random_init_encoder(cfg, seed)
    feats = {}
    for name, (model, info) in (("pretrained", pretrained), ("random-init", random_init)):
        fs = embed_cache(model, out / "cache" / "eval", resolution=DEMO_SIZE, device=device, progress=progress,
                         meta={"encoder": info})
        path = out / f"features-{name}.npz"
        fs.save(path)
        feats[name] = path
    return pretrained, feats


def _probe(feats: dict, eval_labels, run_dir: Path, seed: int) -> dict:
    """Stage 5: every task probed on both encoders' features; ``{task: {encoder: headline}}``."""
    from mammodino.eval.probing import ProbeOptions, run_probe

    tasks = {}
    for task in TASKS:
        tasks[task] = {}
        for name, path in feats.items():
            entries = run_probe(path, task, eval_labels, ProbeOptions(label_fractions=[1.0], seed=seed),
                                out=run_dir / f"probe-{name}-{task}", log=lambda *_: None)
            tasks[task][name] = _headline(entries)
    return tasks


def _attention(out: Path, run_dir: Path, model, device: str):
    """Stage 6: attention maps of a few evaluation images; returns ``(folder, mean-map PNGs)``."""
    from mammodino.eval.attention import render_attention, resolve_inputs

    _say("[6/7] attention maps")
    att_dir = run_dir / "attention"
    sources = resolve_inputs(_example_images(out / "cache" / "eval"), cache=out / "cache" / "eval")
    pngs = []
    for src in sources:
        mean_png, _heads_png, _ = render_attention(model, src, att_dir, resolution=DEMO_SIZE, device=device)
        pngs.append(mean_png)
    return att_dir, pngs


def _print_result(summary: dict, out: Path, run_dir: Path, att_dir: Path, report, steps: int, step_s: float) -> None:
    print(_table(summary))
    print(f"\nreport: {report}\nattention maps: {att_dir}\ncrop preview: {run_dir / 'crop_preview.png'}\n"
          f"loss curve: {run_dir / 'loss_curve.png'}\nsummary: {out / 'summary.json'}\n"
          f"took {summary['minutes']:.1f} min\n"
          f"machine: {machine.one_line(summary['machine'])}; pretraining: {steps} steps at {step_s:.2f} s/step")


def _headline(entries: list[dict]) -> dict:
    e = headline(entries)
    if e is None:
        raise UserError("the probe returned no logistic AUC entry")
    return {k: e[k] for k in ("metric", "value", "ci_low", "ci_high", "n_test")}


def _example_images(cache: Path, n: int = 3) -> list[str]:
    from mammodino.data.cache import read_manifest

    rows = [r for r in read_manifest(cache) if r["kind"] == "ffdm"]
    return [r["id"] for r in rows[:n]]


def _table(summary: dict) -> str:
    lines = ["", "| task | encoder | AUC | 95% CI | n test |", "|---|---|---|---|---|"]
    for task, encs in summary["tasks"].items():
        for name, r in encs.items():
            lines.append(f"| {task} | {name} | {r['value']:.3f} | {r['ci_low']:.3f}-{r['ci_high']:.3f} | {r['n_test']} |")
    return "\n".join(lines)
