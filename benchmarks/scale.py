"""How ingest time and memory grow with the number of images, and training memory stays flat.

Generates 1,000 phantom FFDM images once, indexes the first 100 / 300 / 1,000 of them (a
fresh cache each, in a child process so its peak memory is its own), then runs a few
cpu-tiny training steps on the 100- and the 1,000-image cache and records peak memory.

    python benchmarks/scale.py                      # ~5 minutes on 2 cores
    python benchmarks/scale.py --sizes 100 1000 --workers 2 --out /tmp/mammodino-scale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: process tools

CHILD_INDEX = """
import json, resource, sys, time
from mammodino.data.indexer import index_folder
t = time.perf_counter()
s = index_folder(sys.argv[1], sys.argv[2], size=512, workers=int(sys.argv[3]), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "ok": s["ok"], "skipped": s["skipped"],
                  "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

CHILD_TRAIN = """
import json, resource, sys, time, torch
from mammodino.config import load_config
from mammodino.train.trainer import pretrain
torch.set_num_threads(2)
cfg = load_config("cpu-tiny", ["train.steps=15", "train.log_every=5", "train.checkpoint_every=15", "data.num_workers=1"])
t = time.perf_counter()
pretrain(cfg, [sys.argv[1]], sys.argv[2], progress=False)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    """Run ``code`` in a child; its JSON line plus the peak RSS of the largest process of its
    whole tree (pool workers under a forkserver included, which ru_maxrss would miss)."""
    from support.procs import run

    res = run([sys.executable, "-c", code, *args], peak_rss=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"child failed:\n{res.stderr[-2000:]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    info["tree_peak_mb"] = (res.peak_rss_bytes or 0) / 2**20
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/mammodino-scale")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    from mammodino.synth.generate import generate_phantoms

    out = Path(args.out)
    src_all = out / "phantoms"
    t = time.perf_counter()
    generate_phantoms(src_all, n_ffdm=max(args.sizes), n_dbt=0, seed=7, workers=args.workers)
    print(f"phantoms: {max(args.sizes)} FFDM in {time.perf_counter() - t:.0f} s", flush=True)
    files = sorted((src_all / "ffdm").glob("*.dcm"))
    rows = []
    for n in args.sizes:
        src = out / f"src-{n}"
        if not src.exists():
            (src / "ffdm").mkdir(parents=True)
            for f in files[:n]:
                os.symlink(f, src / "ffdm" / f.name)
        cache = out / f"cache-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        r = child(CHILD_INDEX, str(src), str(cache), str(args.workers))
        rows.append({"images": n, **r})
        print(f"index {n:5d} images: {r['seconds']:6.1f} s ({n / r['seconds']:.1f} img/s), peak RSS main "
              f"{r['rss_self_mb']:.0f} MB, largest process of the tree {r['tree_peak_mb']:.0f} MB", flush=True)
    train = []
    for n in (min(args.sizes), max(args.sizes)):
        run = out / f"run-{n}"
        shutil.rmtree(run, ignore_errors=True)
        r = child(CHILD_TRAIN, str(out / f"cache-{n}"), str(run))
        train.append({"images": n, **r})
        print(f"train 15 steps on {n:5d} images: peak RSS main {r['rss_self_mb']:.0f} MB, "
              f"largest process of the tree {r['tree_peak_mb']:.0f} MB", flush=True)
    print("\n| images | index time (s) | images/s | peak RSS main (MB) | peak RSS largest process (MB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['images']} | {r['seconds']:.1f} | {r['images'] / r['seconds']:.1f} | {r['rss_self_mb']:.0f} | {r['tree_peak_mb']:.0f} |")
    print("\n| training on | peak RSS main (MB) | peak RSS largest process (MB) |")
    print("|---|---|---|")
    for r in train:
        print(f"| {r['images']} images | {r['rss_self_mb']:.0f} | {r['tree_peak_mb']:.0f} |")
    (out / "scale.json").write_text(json.dumps({"index": rows, "train": train}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
