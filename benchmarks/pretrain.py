"""The whole ``mammodino pretrain`` command against its bare step, on a phantom cache.

Three measurements of the same config, alternated (``--repeats`` times; medians reported):

* **command** -- ``python -m mammodino pretrain`` in a child process, exactly as a user
  types it: start-up, the training loader (its worker processes), logging, the collapse
  monitor, checkpoints every ``checkpoint_every`` steps, the crop preview and loss plot.
  Reported as images/s over the whole command and over its steady state (the trainer's own
  ``images_per_s`` in ``metrics.jsonl``, windows after the first).
* **bare step** -- ``train.step.TrainStep`` (the same callable the command runs) on batches
  collated beforehand, in memory: the floor for this config on this machine.
* **loader alone** -- the training loader (``train.loader.build_loader``, same workers)
  iterated without training: batches/s it can supply.

The loader's share = the time the steady-state command spends beyond the bare step, over
the command's step time; "loader-bound" would be the loader alone being slower than a step.

    python benchmarks/pretrain.py                       # cpu-tiny, 60 steps, 2 repeats
    python benchmarks/pretrain.py --cache DIR --steps 100 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mammodino import machine  # noqa: E402
from mammodino.config import load_config  # noqa: E402


def phantom_cache(work: Path, n_ffdm: int, n_dbt: int) -> Path:
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    generate_phantoms(work / "phantoms", n_ffdm=n_ffdm, n_dbt=n_dbt, seed=3, workers=2, mass_scale=2.0, progress=False)
    index_folder(work / "phantoms", work / "cache", size=256, workers=2, progress=False)
    return work / "cache"


def overrides(args) -> list[str]:
    return [f"train.steps={args.steps}", f"train.log_every={args.log_every}",
            f"train.checkpoint_every={max(10, args.steps // 10)}", *args.set]


def run_command(args, cache: Path, run_dir: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mammodino", "pretrain", "--config", args.config, "--data", str(cache),
                    "--out", str(run_dir), "--no-progress", *overrides(args)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steady = [r["images_per_s"] for r in rows if "images_per_s" in r][1:]
    return {"wall_s": wall, "steady_images_per_s": statistics.median(steady) if steady else float("nan")}


def bare_step(cfg, batches: list, n: int) -> float:
    from mammodino.train.ssl_model import SSLModel
    from mammodino.train.step import build_train_step

    torch.manual_seed(0)
    device = torch.device("cpu")
    step = build_train_step(cfg, SSLModel(cfg), device)
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        step(i, [batches[i % len(batches)]])
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def loader_alone(cfg, dataset, plan, n: int) -> float:
    from mammodino.data.dataset import collate
    from mammodino.train.loader import build_loader

    it = iter(build_loader(dataset, plan, cfg, 0, 0, 1, collate))
    n = min(n, int(cfg.train.steps) * int(cfg.train.grad_accum) - 1)  # a short run has fewer batches
    next(it)  # worker start-up
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    dt = (time.perf_counter() - t0) / n
    del it
    return dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", help="an indexed cache (default: phantoms made here)")
    p.add_argument("--config", default="cpu-tiny")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-ffdm", type=int, default=64)
    p.add_argument("--n-dbt", type=int, default=8)
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="config overrides for every run")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mammodino.data.dataset import PretrainDataset, collate
    from mammodino.data.batch_plan import BatchPlan

    with tempfile.TemporaryDirectory(prefix="mammodino-pretrain-bench-") as tmp:
        work = Path(tmp)
        cache = Path(args.cache) if args.cache else phantom_cache(work, args.n_ffdm, args.n_dbt)
        cfg = load_config(args.config, overrides(args))
        dataset = PretrainDataset([str(cache)], cfg)
        plan = BatchPlan(dataset, cfg)
        batches = [collate([dataset[k] for k in plan.batch_keys(s)]) for s in range(4)]
        batch = int(cfg.train.batch_size)
        load0 = os.getloadavg()
        cmd, bare, loader = [], [], []
        for r in range(args.repeats):
            bare.append(bare_step(cfg, batches, n=10))
            loader.append(loader_alone(cfg, dataset, plan, n=20))
            cmd.append(run_command(args, cache, work / f"run{r}"))
        res = {
            "machine": machine.describe(), "config": args.config, "overrides": overrides(args), "batch": batch,
            "workers": int(cfg.data.num_workers), "load_before": load0, "load_after": os.getloadavg(),
            "bare_s_per_step": statistics.median(bare),
            "loader_s_per_batch": statistics.median(loader),
            "command_wall_s": statistics.median(c["wall_s"] for c in cmd),
            "command_steady_images_per_s": statistics.median(c["steady_images_per_s"] for c in cmd),
        }
    res["bare_images_per_s"] = batch / res["bare_s_per_step"]
    res["command_images_per_s"] = args.steps * batch / res["command_wall_s"]
    steady_step = batch / res["command_steady_images_per_s"]
    res["loader_share"] = max(0.0, steady_step - res["bare_s_per_step"]) / steady_step
    res["loader_images_per_s"] = batch / res["loader_s_per_batch"]
    print(f"pretrain benchmark: {machine.one_line(res['machine'])}; {args.config} ({', '.join(res['overrides'])}), "
          f"batch {batch}, {res['workers']} loader worker(s), {args.threads} torch threads, {args.repeats} repeats "
          f"alternated; load average {load0[0]:.1f} -> {res['load_after'][0]:.1f}")
    print(f"  bare step (TrainStep, batches in memory)   {res['bare_images_per_s']:7.2f} images/s  "
          f"({res['bare_s_per_step']:.3f} s/step)")
    print(f"  mammodino pretrain, steady state           {res['command_steady_images_per_s']:7.2f} images/s  "
          f"({steady_step:.3f} s/step) = {res['command_steady_images_per_s'] / res['bare_images_per_s']:.2f}x the bare step")
    print(f"  mammodino pretrain, whole command          {res['command_images_per_s']:7.2f} images/s  "
          f"({res['command_wall_s']:.1f} s for {args.steps} steps, start-up and checkpoints included)")
    print(f"  training loader alone                      {res['loader_images_per_s']:7.2f} images/s  "
          f"({res['loader_s_per_batch']:.3f} s/batch)")
    print(f"  loader share of a steady-state step: {100 * res['loader_share']:.0f} %"
          f"{'  (LOADER-BOUND: the loader alone is slower than the step)' if res['loader_s_per_batch'] > res['bare_s_per_step'] else ''}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
