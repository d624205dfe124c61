"""Export the teacher backbone of a training checkpoint as a standalone encoder.

Writes OUT/model.safetensors (the ViT weights) and OUT/config.json (architecture,
preprocessing, mammodino version, the training config). Load it back with
``mammodino.load_encoder("OUT")``. With --timm the weights use the key names of timm's
vit_*_patch14_reg4_dinov2 and a 3-channel patch embedding (grey replicated to RGB gives
the same output).

examples:
  mammodino export runs/demo/checkpoint-last.safetensors runs/demo/encoder
  mammodino export runs/demo runs/demo/encoder-timm --timm
"""

from __future__ import annotations

HELP = "Export the teacher backbone as safetensors (+ timm-compatible option)."


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.safetensors) or a run folder (its newest checkpoint)")
    parser.add_argument("out", help="output folder (created; refused when it holds an earlier export)")
    parser.add_argument("--which", choices=["teacher", "student"], default="teacher",
                        help="which network's backbone (default: teacher, the one DINOv2 evaluates; "
                             "MAE / SimMIM runs have no teacher and export their encoder either way)")
    parser.add_argument("--timm", action="store_true", help="write timm's key names and a 3-channel patch embedding")


def run(args) -> int:
    from mammodino.models.export import export_backbone
    from mammodino.models.loading import CONFIG_FILE, MODEL_FILE, backbone_from_checkpoint, resolve_checkpoint
    from mammodino.outputs import output_folder

    output_folder(args.out, "OUT", will_write=(MODEL_FILE, CONFIG_FILE, MODEL_FILE + ".partial", CONFIG_FILE + ".partial"))
    path = resolve_checkpoint(args.checkpoint)
    backbone, config = backbone_from_checkpoint(path, which=args.which)
    which = "student" if config.get("method") in ("mae", "simmim") else args.which  # no teacher there
    out = export_backbone(backbone, config, args.out, timm_layout=args.timm, source=f"{path.name} [{which}]")
    n_params = sum(p.numel() for p in backbone.parameters())
    layout = "timm" if args.timm else "mammodino"
    print(f"exported the {which} backbone of {path} ({backbone.arch}, patch {backbone.patch_size}, "
          f"{backbone.num_register_tokens} registers, {n_params / 1e6:.1f} M parameters, {layout} layout) to {out}/")
    return 0
