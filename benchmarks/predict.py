"""Throughput of ``mammodino predict``: images/s on the RSNA DICOMs against the bare decode of
the same files in the same run, and on an indexed cache (inference alone).

The model is a fine-tune-shaped network (ViT + attention head) written with the production
``save_finetuned``; its weights are untrained, which does not change the cost. Every number
comes from ``mammodino.finetune.predict.predict``, the code the command runs.

Examples:
  python benchmarks/predict.py                                   # ViT-S/14 at 518 px, 1 and 2 workers
  python benchmarks/predict.py --arch tiny --patch 16 --resolution 256
  python benchmarks/predict.py --device cuda --arch base --batch 64 --resolution 1024   # GPU, bf16
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mammodino.finetune.heads import build_head  # noqa: E402
from mammodino.finetune.model import FineTuneModel, save_finetuned  # noqa: E402
from mammodino.finetune.predict import predict  # noqa: E402
from mammodino.models.preprocess import describe  # noqa: E402
from mammodino.models.vit import build_vit  # noqa: E402

RSNA = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data")) / "rsna"


def machine() -> str:
    from mammodino.machine import one_line

    return one_line()


def make_model(out: Path, arch: str, patch: int, resolution: int, cache_long_side: int) -> Path:
    from mammodino.eval.embedding import input_size

    torch.manual_seed(0)
    vit = build_vit(arch, patch_size=patch, num_register_tokens=4)
    model = FineTuneModel(vit, build_head("attention", vit.embed_dim, 2))
    size = input_size(resolution, patch)
    return save_finetuned(model, out, {"tasks": ["benchmark"], "classes": ["negative", "positive"],
                                       "preprocessing": {**describe(), "resolution": resolution, "input_size": size,
                                                         "cache_long_side": cache_long_side}})


def bare_decode(files) -> float:
    import pydicom

    t0 = time.perf_counter()
    for f in files:
        pydicom.dcmread(f).pixel_array
    return len(files) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="small")
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--resolution", type=int, default=518)
    ap.add_argument("--cache-size", type=int, default=1024, help="long side the files are indexed at")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--src", default=str(RSNA), help="folder of DICOMs (default: the RSNA files)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    src = Path(args.src)
    files = sorted(src.rglob("*.dcm"))
    if not files:
        raise SystemExit(f"no DICOM files under {src}")
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    model_dir = make_model(work / "model", args.arch, args.patch, args.resolution, args.cache_size)
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"model: ViT-{args.arch}/{args.patch} + attention head, input {args.resolution} px, batch {args.batch}, "
          f"device {args.device}, precision {args.precision}; {len(files)} DICOMs from {src}\n")
    rows = []
    decode = bare_decode(files)
    rows.append(("bare pydicom decode (1 process, the floor)", decode, ""))
    cache = None
    for w in [int(x) for x in args.workers.split(",")]:
        keep = work / f"cache-{w}"
        s = predict(model_dir, src, work / f"scores-{w}.csv", workers=w, batch_size=args.batch, device=args.device,
                    precision=args.precision, progress=False, cache_dir=keep)
        cache = keep
        rows.append((f"predict on the raw DICOMs, {w} worker(s)", s["images_per_s"],
                     f"decode+index {s['decode_index_seconds']:.1f} s of {s['seconds']:.1f} s; {s['skipped']} skipped"))
    s = predict(model_dir, cache, work / "scores-cache.csv", batch_size=args.batch, device=args.device,
                precision=args.precision, progress=False)
    rows.append(("predict on the indexed cache (inference only)", s["images_per_s"], f"{s['seconds']:.2f} s"))
    print("| run | images/s | notes |\n|---|---|---|")
    for name, ips, note in rows:
        print(f"| {name} | {ips:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
