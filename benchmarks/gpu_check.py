"""The GPU check: one script, about 8 minutes on one GPU, one JSON of figures.

Stages (each timed, each failure recorded and the next stage run):

1. ``tests``   -- ``pytest -m cuda`` (the tests that need a GPU; they skip on CPU).
2. ``steps``   -- the production training step (``train.step.TrainStep``, bf16 autocast) of
   ViT-S/14 and ViT-B/14, 2x224 + 8x98 crops, 65,536 prototypes, with ``train.compile``
   off and on: images/s, FLOPs per step (``torch.utils.flop_counter``), model FLOPs
   utilisation against the device's dense bf16 peak (datasheet table below) and against a
   measured 8192^3 bf16 matmul. Goals: ViT-B/14 MFU >= 45 %, ViT-S/14 >= 1,000 images/s
   on one H200-class GPU.
3. ``fsdp2``   -- ``torchrun --nproc_per_node 1 -m mammodino pretrain`` with
   ``train.fsdp=true`` on a phantom cache: it runs, checkpoints, and its images/s.
4. ``loader``  -- the training loader with 16 workers on the phantom cache: samples/s.
5. ``embed``   -- ``eval.embedding.embed_cache`` of a ViT-B/14 at 224 px: images/s.

``--dry-run`` (no GPU needed) checks the script end to end on the CPU: it prints the plan,
builds every configuration, runs each stage at micro size (a ViT-tiny step, 2 loader
workers, a few embeddings; the FSDP2 and CUDA-test stages are only planned), and writes
the JSON, so a GPU session spends its minutes measuring, not debugging.

    python benchmarks/gpu_check.py --out gpu_check.json          # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/plan.json  # here, on CPU
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
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mammodino import machine  # noqa: E402

# Dense bf16 tensor-core peak, TFLOP/s (vendor datasheets, SXM/PCIe where they differ).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "RTX 4090": 165.0, "B200": 2250.0}


def device_peak(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return PEAK_BF16_TFLOPS[key] * 1e12
    return None


def measured_matmul_peak(device, dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps = 10 if device.type == "cuda" else 1
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plan(dry: bool) -> dict:
    if dry:
        return {"steps": [{"arch": "tiny", "patch": 16, "batch": 4, "global": 64, "n_local": 2, "local": 32,
                           "prototypes": 256, "compile": False, "steps": 2, "warmup": 1}],
                "loader_workers": 2, "loader_batches": 3, "embed_arch": "tiny", "embed_images": 8,
                "phantoms": (8, 2), "matmul_n": 512, "precision": "fp32"}
    steps = []
    for arch, batch in (("small", 128), ("base", 64)):
        for compile_ in (False, True):
            steps.append({"arch": arch, "patch": 14, "batch": batch, "global": 224, "n_local": 8, "local": 98,
                          "prototypes": 65536, "compile": compile_, "steps": 10, "warmup": 3})
    return {"steps": steps, "loader_workers": 16, "loader_batches": 40, "embed_arch": "base", "embed_images": 512,
            "phantoms": (96, 16), "matmul_n": 8192, "precision": "bf16"}


def stage_tests(dry: bool) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", str(ROOT / "tests")]
    if dry:
        return {"planned": " ".join(cmd)}
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
    return {"returncode": proc.returncode, "tail": proc.stdout[-2000:]}


_FLOPS: dict = {}  # per (arch, batch): counted eagerly, reused for the compiled run


def stage_step(spec: dict, device, precision: str, peak: float | None, measured_peak: float) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from mammodino.config import load_config
    from mammodino.train.ssl_model import SSLModel
    from mammodino.train.step import build_train_step
    from train_step import TIMED_STEP, make_batch

    cfg = load_config("vit-small", [
        f"model.arch={spec['arch']}", f"model.patch_size={spec['patch']}", "model.num_register_tokens=4",
        f"dino.n_prototypes={spec['prototypes']}", f"ibot.n_prototypes={spec['prototypes']}",
        f"crops.global_crop_size={spec['global']}", f"crops.local_crop_size={spec['local']}",
        f"crops.local_crops_number={spec['n_local']}", f"train.batch_size={spec['batch']}", "slice.enabled=false",
        "train.steps=1000", f"train.precision={precision}", f"train.compile={str(spec['compile']).lower()}"])
    torch.manual_seed(0)
    step = build_train_step(cfg, SSLModel(cfg).to(device), device)
    batch = make_batch(cfg, device)
    t_first = time.perf_counter()
    for _ in range(spec["warmup"]):
        step(TIMED_STEP, [batch])
    _sync(device)
    warm_s = time.perf_counter() - t_first
    times = []
    for _ in range(spec["steps"]):
        t0 = time.perf_counter()
        step(TIMED_STEP, [batch])
        _sync(device)
        times.append(time.perf_counter() - t0)
    key = (spec["arch"], spec["batch"])
    if key not in _FLOPS:
        if spec["compile"]:  # the counter needs eager ops: count on an eager twin
            eager = build_train_step(cfg, SSLModel(cfg).to(device), device)
            eager.student = eager.model.student
        else:
            eager = step
        counter = FlopCounterMode(display=False)
        with counter:
            eager(TIMED_STEP, [batch])
        _FLOPS[key] = counter.get_total_flops()
        del eager
    flops = _FLOPS[key]
    s = statistics.median(times)
    out = {**spec, "s_per_step": s, "images_per_s": spec["batch"] / s, "warmup_s": warm_s, "flops_per_step": flops,
           "achieved_tflops": flops / s / 1e12, "mfu_vs_measured_matmul": flops / s / measured_peak}
    if peak:
        out["mfu_vs_datasheet"] = flops / s / peak
    if device.type == "cuda":
        out["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    del step
    return out


def make_cache(work: Path, n_ffdm: int, n_dbt: int) -> Path:
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    generate_phantoms(work / "ph", n_ffdm=n_ffdm, n_dbt=n_dbt, seed=5, workers=min(16, os.cpu_count() or 1),
                      progress=False)
    index_folder(work / "ph", work / "cache", size=512, workers=min(16, os.cpu_count() or 1), progress=False)
    return work / "cache"


def stage_fsdp2(cache: Path, work: Path, dry: bool) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "mammodino",
           "pretrain", "--config", "vit-base", "--data", str(cache), "--out", str(work / "fsdp-run"), "--no-progress",
           "train.fsdp=true", "train.steps=30", "train.batch_size=64", "train.log_every=10",
           "train.checkpoint_every=30", "data.num_workers=8"]
    if dry:
        return {"planned": " ".join(cmd)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
    out = {"returncode": proc.returncode, "wall_s": time.perf_counter() - t0, "tail": proc.stdout[-1500:]}
    metrics = work / "fsdp-run" / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        out["images_per_s"] = [r.get("images_per_s") for r in rows]
        out["checkpoint_written"] = (work / "fsdp-run" / "checkpoint-last.safetensors").exists()
    return out


def stage_loader(cache: Path, workers: int, n_batches: int) -> dict:
    from mammodino.config import load_config
    from mammodino.data.dataset import PretrainDataset, collate
    from mammodino.data.batch_plan import BatchPlan
    from mammodino.train.loader import build_loader

    cfg = load_config("vit-small", [f"data.num_workers={workers}", "train.batch_size=128", "train.steps=1000"])
    dataset = PretrainDataset([str(cache)], cfg)
    it = iter(build_loader(dataset, BatchPlan(dataset, cfg), cfg, 0, 0, 1, collate))
    next(it)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    dt = time.perf_counter() - t0
    del it
    return {"workers": workers, "samples_per_s": n_batches * cfg.train.batch_size / dt,
            "samples_per_s_per_worker": n_batches * cfg.train.batch_size / dt / max(workers, 1)}


def stage_embed(cache: Path, arch: str, device, n_images: int) -> dict:
    from mammodino.eval.embedding import embed_cache
    from mammodino.models.vit import build_vit

    model = build_vit(arch, patch_size=14, num_register_tokens=4).to(device).eval()
    t0 = time.perf_counter()
    feats = embed_cache(model, cache, resolution=224, batch_size=64, device=device, progress=False)
    dt = time.perf_counter() - t0
    n = len(feats.features) if hasattr(feats, "features") else n_images
    return {"arch": arch, "images": n, "images_per_s": n / dt}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--dry-run", action="store_true", help="check the script on the CPU at micro size")
    p.add_argument("--skip", default="", help="comma list of stages to skip (tests,steps,fsdp2,loader,embed)")
    args = p.parse_args(argv)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --dry-run to check the script on the CPU")
    device = torch.device("cpu" if dry else "cuda")
    pl = plan(dry)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    info = machine.describe()
    name = info.get("gpu", "cpu (dry run)")
    dtype = torch.bfloat16 if pl["precision"] == "bf16" else torch.float32
    results = {"machine": info, "dry_run": dry, "plan": pl, "stages": {}}
    print(f"gpu_check on {machine.one_line(info)}{' [DRY RUN on CPU]' if dry else ''}", flush=True)
    t_all = time.perf_counter()

    def run(stage: str, fn):
        if stage in skip:
            results["stages"][stage] = {"skipped": True}
            return
        t0 = time.perf_counter()
        try:
            r = fn()
        except Exception as exc:  # one stage failing must not cost the others
            r = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        r = r if isinstance(r, dict) else {"result": r}
        r["stage_s"] = round(time.perf_counter() - t0, 2)
        results["stages"][stage] = r
        print(f"  {stage}: {json.dumps({k: v for k, v in r.items() if k not in ('tail', 'traceback')}, default=str)[:600]}",
              flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))

    run("tests", lambda: stage_tests(dry))
    peak = None if dry else device_peak(name)
    measured = measured_matmul_peak(device, dtype, pl["matmul_n"])
    results["peak"] = {"datasheet_flops": peak, "measured_matmul_flops": measured, "matmul_n": pl["matmul_n"]}
    run("steps", lambda: {"runs": [stage_step(s, device, pl["precision"] if not dry else "fp32", peak, measured)
                                   for s in pl["steps"]]})
    with tempfile.TemporaryDirectory(prefix="mammodino-gpu-check-") as tmp:
        work = Path(tmp)
        cache = make_cache(work, *pl["phantoms"])
        run("fsdp2", lambda: stage_fsdp2(cache, work, dry))
        run("loader", lambda: stage_loader(cache, pl["loader_workers"], pl["loader_batches"]))
        run("embed", lambda: stage_embed(cache, pl["embed_arch"], device, pl["embed_images"]))
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out} ({results['total_s']} s)")
    return 1 if any("error" in s for s in results["stages"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
