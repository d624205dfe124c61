"""Last-layer CLS-to-patch attention maps overlaid on mammograms, written as PNG.

Examples:
  mammodino attention runs/tiny /data/rsna/train_images/10006/462822612.dcm --out runs/tiny/attention
  mammodino attention runs/tiny 3f2a9c01d4e5b6a7 --cache cache/ --out att/     # a cached image by id or stem
  mammodino attention --random-init --arch tiny --patch-size 16 image.dcm --out att/

For each image: NAME_attention.png (the breast-cropped image with its tissue outline, and
the mean over heads of the CLS attention overlaid) and NAME_heads.png (one overlay per
head). Registers are excluded. DICOMs go through the indexer's steps (read, segment, crop
to the breast, chest wall left); cached images are used as cached. Output names are file
stems or cache ids, never folder names (which may hold patient ids).
"""

from __future__ import annotations

HELP = "Last-layer CLS attention maps overlaid on mammograms, as PNG."


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="CHECKPOINT IMAGE... (with --random-init: IMAGE...). IMAGE: DICOM, .npy/.png/.tif/.jpg, a folder of them, or an id/stem of --cache")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the PNGs")
    p.add_argument("--resolution", type=int, default=448, help="square input side (default 448)")
    p.add_argument("--cache", default=None, help="cache folder for IMAGE given as id or stem")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the attention colours (default 0.5)")
    p.add_argument("--which", choices=["teacher", "student"], default="teacher")
    p.add_argument("--random-init", action="store_true", help="an untrained encoder (to check the plumbing)")
    p.add_argument("--arch", choices=["tiny", "small", "base", "large"], default=None)
    p.add_argument("--patch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")


def run(args) -> int:
    import json
    from pathlib import Path

    import torch

    from mammodino.errors import UserError
    from mammodino.eval.attention import iter_inputs, render_attention
    from mammodino.models.loading import load_backbone

    if args.random_init:
        checkpoint, images = None, args.paths
    else:
        if len(args.paths) < 2:
            raise UserError("attention expects CHECKPOINT IMAGE... (or --random-init IMAGE...)")
        checkpoint, images = args.paths[0], args.paths[1:]
    if not 0 <= args.alpha <= 1:
        raise UserError(f"--alpha {args.alpha}: must be in [0, 1]")
    from mammodino.outputs import output_folder

    output_folder(args.out, "--out", will_write=("*_attention.png", "*_heads.png", "attention_stats.json"))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model, _info = load_backbone(checkpoint, which=args.which, random_init=args.random_init, arch=args.arch,
                                 patch_size=args.patch_size, seed=args.seed)
    model = model.to(device)
    out = Path(args.out)
    stats = []
    for src in iter_inputs(images, args.cache):
        mean_png, heads_png, s = render_attention(model, src, out, args.resolution, args.alpha, device)
        stats.append(s)
        print(f"{mean_png}  {heads_png}  ({s['attention_on_tissue']:.0%} of the attention on tissue, "
              f"which covers {s['tissue_area_share']:.0%} of the patches)")
    (out / "attention_stats.json").write_text(json.dumps(stats, indent=1))
    return 0
