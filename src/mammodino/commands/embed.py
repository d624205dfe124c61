"""Frozen-encoder features for every ok image of an indexed cache, saved as one NPZ.

Examples:
  mammodino embed runs/tiny cache/ features.npz
  mammodino embed runs/tiny/checkpoint-last.safetensors cache/ features.npz --resolution 448 --last4
  mammodino embed encoder/ cache/ features.npz                      # exported encoder folder
  mammodino embed dinov2_vits14_reg4_pretrain.pth cache/ features.npz   # plain DINOv2 weights
  mammodino embed --random-init --arch tiny --patch-size 16 cache/ features-random.npz
  mammodino embed runs/tiny cache/ slices.npz --dbt-slices all      # one row per DBT slice

Each image is resized so its long side is --resolution, zero-padded to a square (image at
the left edge, chest wall left) and normalised as in training. The feature is the CLS token
and the mean patch token of the final layer (--last4: of each of the last four blocks),
concatenated. DBT volumes are represented by their middle slice unless --dbt-slices all.
The NPZ holds features, id, patient_key (pseudonymous), laterality, view, kind, stem,
slice, n_slices, the cache path and how the features were made; never a raw patient id.
"""

from __future__ import annotations

HELP = "Frozen-encoder features for every image of a cache."


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="CHECKPOINT CACHE OUT (with --random-init: CACHE OUT). CHECKPOINT: run folder, "
                        "training checkpoint, exported encoder, or DINOv2 weight file")
    p.add_argument("--resolution", type=int, default=224,
                   help="square input side in pixels (rounded up to a multiple of the patch); default 224")
    p.add_argument("--last4", action="store_true", help="CLS + mean patch of each of the last 4 blocks")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--which", choices=["teacher", "student"], default="teacher",
                   help="which network of a training checkpoint (default teacher)")
    p.add_argument("--dbt-slices", choices=["middle", "all"], default="middle",
                   help="DBT: middle slice only (image level) or every slice (adds slice-level rows)")
    p.add_argument("--random-init", action="store_true", help="an untrained encoder (baseline)")
    p.add_argument("--arch", choices=["tiny", "small", "base", "large"], default=None,
                   help="ViT size for --random-init (default tiny) or a DINOv2 file whose size cannot be read")
    p.add_argument("--patch-size", type=int, default=None, help="patch size for --random-init (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --random-init weights")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all usable cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import time
    from pathlib import Path

    import torch

    from mammodino.errors import UserError
    from mammodino.eval.embedding import embed_cache, set_threads
    from mammodino.models.loading import load_backbone

    expected = 2 if args.random_init else 3
    if len(args.paths) != expected:
        want = "CACHE OUT" if args.random_init else "CHECKPOINT CACHE OUT"
        raise UserError(f"embed expects {want}, got {len(args.paths)} path(s): {' '.join(args.paths)}")
    checkpoint = None if args.random_init else args.paths[0]
    cache, out = args.paths[-2], Path(args.paths[-1])
    if out.suffix != ".npz":
        out = out.with_suffix(out.suffix + ".npz") if out.suffix else out.with_suffix(".npz")
    from mammodino.outputs import new_file

    new_file(out, "OUT")  # checked before the model is loaded: nothing is overwritten
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    threads = set_threads(args.threads)
    model, info = load_backbone(checkpoint, which=args.which, random_init=args.random_init, arch=args.arch,
                                patch_size=args.patch_size, seed=args.seed)
    t0 = time.perf_counter()
    fs = embed_cache(model, cache, resolution=args.resolution, last4=args.last4, batch_size=args.batch,
                     dbt_slices=args.dbt_slices, device=device, progress=not args.no_progress,
                     meta={"encoder": info, "threads": threads, "device": str(device)})
    dt = time.perf_counter() - t0
    fs.save(out)
    n_img = len(set(fs.id.tolist()))
    print(f"embedded {len(fs)} rows ({n_img} images) of {fs.dim} dims at {fs.meta['input_size']} px "
          f"in {dt:.1f} s ({len(fs) / max(dt, 1e-9):.1f} rows/s, {device}, {threads} threads) -> {out}")
    return 0
