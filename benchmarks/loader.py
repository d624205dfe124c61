"""Loader benchmark: tissue-aware pretraining samples per second per core, from a cache.

One sample = 2 global crops of 224 + 8 local crops of 96 (the benchmark spec in DESIGN.md;
training uses 98 with patch 14) + tissue-aware iBOT masks + photometric augmentation, from a
cache at a long side of 1024. The yardstick, measured in the same run on the same files, is
the bare read of the cached arrays (``np.load`` of the image, or of the two DBT slices through
a memory map, plus the mask): no loader can beat it. Target: >= 150 samples/s/core.

Without ``--cache`` a synthetic cache is written to a temporary folder (breast-shaped masks,
textured images of 1024 x ~800, a few DBT volumes), so the benchmark runs anywhere.

Usage:
    python benchmarks/loader.py                       # synthetic cache
    python benchmarks/loader.py --cache /data/cache   # a real cache from `mammodino index`
    python benchmarks/loader.py --profile             # + cProfile of the single-process path
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: array caches
from mammodino.config import load_config  # noqa: E402
from mammodino.data.batch_plan import BatchPlan  # noqa: E402
from mammodino.data.dataset import PretrainDataset  # noqa: E402
from mammodino.train.loader import build_loader  # noqa: E402  (the loader training runs)
from support.array_cache import write_array_cache  # noqa: E402

TARGET = 150.0  # samples/s/core


def synthetic_breast(rng: np.random.Generator, h: int, w: int, z: int | None = None):
    """A textured half-ellipse breast, chest wall on the left, as the indexer writes it."""
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (0, h // 2 + int(rng.integers(-40, 40))), (int(w * rng.uniform(0.8, 0.95)), int(h * 0.46)),
                0, -90, 90, 1, -1)
    coarse = cv2.resize(rng.random((h // 32, w // 32)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    base = np.clip(0.35 + 0.4 * coarse + 0.5 * (fine - 0.5), 0, 1) * mask
    if z is None:
        return (base * 65535).astype(np.uint16), mask
    vol = np.empty((z, h, w), np.uint16)
    for k in range(z):
        drift = cv2.GaussianBlur(rng.random((h // 8, w // 8)).astype(np.float32), (0, 0), 1.0)
        drift = cv2.resize(drift, (w, h), interpolation=cv2.INTER_LINEAR)
        vol[k] = (np.clip(base * (0.85 + 0.3 * drift), 0, 1) * 65535).astype(np.uint16)
    return vol, mask


def write_synthetic_cache(out: Path, n_ffdm: int, n_dbt: int, slices: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n_ffdm + n_dbt):
        kind = "ffdm" if i < n_ffdm else "dbt"
        h, w = 1024, int(rng.integers(720, 860))
        image, mask = synthetic_breast(rng, h, w, slices if kind == "dbt" else None)
        entries.append(dict(id=f"{rng.integers(2**63):016x}", source=f"synthetic/{i}", stem=f"synthetic{i}",
                            kind=kind, laterality="L", view="CC", image=image, mask=mask))
    return write_array_cache(out, entries)


def bare_read(dataset: PretrainDataset, keys) -> None:
    """The floor: read exactly the arrays a sample needs, nothing else."""
    for key in keys:
        item = dataset.item(key.index)
        if item.is_dbt:
            vol = np.load(item.cache_dir / item.row["image_file"], mmap_mode="r")
            z = vol.shape[0] // 2
            np.array(vol[z]), np.array(vol[z + 1])
        else:
            np.load(item.cache_dir / item.row["image_file"])
        np.load(item.cache_dir / item.row["mask_file"])


def rate(fn, n: int, repeats: int = 3) -> tuple[float, float]:
    """Best of ``repeats`` (these machines are shared and noisy): samples per wall-clock second
    and per CPU second of this process (= per core, and immune to other users' load)."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return n / best_wall, n / max(best_cpu, 1e-9)


def loader_rate(dataset, cfg, workers: int, steps: int) -> float:
    """Collated batches through training's own loader (``train.loader.build_loader``: its
    prefetch, pinning and worker set-up); worker start-up and the first batch excluded."""
    cfg.train.steps, cfg.data.num_workers = steps + 1, workers
    loader = build_loader(dataset, BatchPlan(dataset, cfg), cfg)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        n += batch["is_dbt"].shape[0]
    elapsed = time.perf_counter() - t0
    del it, loader
    return n / elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", action="append", help="cache folder(s) (default: a synthetic one)")
    ap.add_argument("--n-ffdm", type=int, default=24)
    ap.add_argument("--n-dbt", type=int, default=4)
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--samples", type=int, default=256, help="samples per single-process measurement")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--local-size", type=int, default=96)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    tmp = None
    if args.cache:
        caches = args.cache
    else:
        tmp = tempfile.TemporaryDirectory(prefix="mammodino-bench-")
        t0 = time.perf_counter()
        caches = [write_synthetic_cache(Path(tmp.name), args.n_ffdm, args.n_dbt, args.slices)]
        print(f"synthetic cache: {args.n_ffdm} FFDM + {args.n_dbt} DBT x {args.slices} slices at 1024 x ~800 "
              f"({time.perf_counter() - t0:.1f} s to write)")

    def config(sampler: str, dbt_fraction: float):
        cfg = load_config(None, [f"crops.sampler={sampler}", f"data.dbt_fraction={dbt_fraction}",
                                 f"train.batch_size={args.batch}"])
        cfg.crops.local_crop_size = args.local_size  # 96 is not a multiple of patch 14: set after validation
        return cfg

    c = config("tissue", 0.25).crops
    print(f"sample: 2 x {c.global_crop_size} global + {c.local_crops_number} x {args.local_size} local crops, "
          f"iBOT masks (patch 14), augmentation; cv2/torch threads = 1; {os.cpu_count()} cores here\n")
    results = []
    for label, sampler, frac in (("tissue, FFDM only", "tissue", 0.0), ("tissue, 25% DBT", "tissue", 0.25),
                                 ("random (DINOv2), FFDM only", "random", 0.0)):
        cfg = config(sampler, frac)
        ds = PretrainDataset(caches, cfg)
        if frac > 0 and not len(ds.dbt_indices):
            label = "tissue (cache has no DBT)"
        plan = BatchPlan(ds, cfg)
        steps = max(args.samples // args.batch, 1)
        keys = [k for s in range(steps) for k in plan.batch_keys(s)]
        for k in keys[:8]:  # warm the page cache and imports
            ds[k]
        floor, floor_cpu = rate(lambda: bare_read(ds, keys), len(keys))
        single, single_cpu = rate(lambda: [ds[k] for k in keys], len(keys))
        row = {"label": label, "floor": floor, "floor_cpu": floor_cpu, "single": single, "single_cpu": single_cpu}
        if label != "random (DINOv2), FFDM only":
            row["loader0"] = loader_rate(ds, cfg, 0, steps)
            if args.workers > 0:
                row["loaderN"] = loader_rate(ds, cfg, args.workers, 2 * steps)
        results.append(row)
        if args.profile and label == "tissue, 25% DBT":
            prof = cProfile.Profile()
            prof.enable()
            for k in keys:
                ds[k]
            prof.disable()
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(18)

    cores_used = min(args.workers, os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"samples/s (wall clock, best of 3; 'per CPU s' = samples per CPU-second of the process, i.e. per core, "
          f"not slowed by other users; load average now {load:.1f} on {os.cpu_count()} cores)")
    print(f"{'':28s} {'bare read':>10s} {'(per CPU s)':>11s} {'1 process':>10s} {'(per CPU s)':>11s} "
          f"{'loader w=0':>11s} {f'loader w={args.workers}':>11s} {'/ core':>7s}")
    nan = float("nan")
    for r in results:
        n = r.get("loaderN")
        print(f"{r['label']:28s} {r['floor']:10.0f} {r['floor_cpu']:11.0f} {r['single']:10.0f} {r['single_cpu']:11.0f} "
              f"{r.get('loader0', nan):11.0f} {n if n else nan:11.0f} {(n / cores_used) if n else nan:7.0f}")
    best = results[1]
    verdict = "meets" if best["single_cpu"] >= TARGET else "misses"
    print(f"\ntissue-aware sampling ({best['label']}): {best['single_cpu']:.0f} samples per CPU-second = "
          f"{1e3 / best['single_cpu']:.2f} ms of one core per sample ({verdict} the {TARGET:.0f} samples/s/core target); "
          f"bare read of the same files: {1e3 / best['floor_cpu']:.2f} ms, i.e. the loader costs "
          f"{best['floor_cpu'] / best['single_cpu']:.0f}x the read.")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
