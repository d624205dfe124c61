"""Export a trained backbone, and load it back as a ready encoder.

An export folder ``OUT`` holds::

    OUT/model.safetensors   the backbone weights (our key names, or timm's with --timm)
    OUT/config.json         architecture, preprocessing, mammodino version, training config

Reading either layout back (``mammodino.load_encoder(OUT)``), and reading the training
checkpoint an export starts from, is :mod:`mammodino.models.loading`: one loader for every
command.

The timm layout (``timm_layout=True``) is the state dict of timm's
``vit_{small,base,large}_patch14_reg4_dinov2`` (``no_embed_class=True``): ``reg_token``,
the CLS position folded into ``cls_token``, ``pos_embed`` over the patch grid only, and a
3-channel patch embedding (our filter / 3 per channel), so a grey image replicated to RGB
gives exactly our output. Load it in timm with e.g.::

    timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=True, num_classes=0, img_size=224,
                      pretrained_cfg_overlay=dict(file="OUT/model.safetensors"))
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mammodino import atomic
from mammodino.models import preprocess
from mammodino.models.loading import CONFIG_FILE, MODEL_FILE, backbone_config
from mammodino.models.vit import VisionTransformer

FORMAT = "mammodino-encoder"


# ---- timm layout ---------------------------------------------------------------------------
def to_timm_state_dict(backbone: VisionTransformer) -> dict[str, Tensor]:
    """Our backbone as the state dict of timm's DINOv2 ViT (3 input channels)."""
    sd = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    sd.pop("mask_token", None)
    w = sd["patch_embed.proj.weight"]
    sd["patch_embed.proj.weight"] = (w / 3.0).repeat(1, 3, 1, 1) if w.shape[1] == 1 else w
    if backbone.num_register_tokens:
        pos = sd.pop("pos_embed")
        sd["cls_token"] = sd["cls_token"] + pos[:, :1]
        sd["pos_embed"] = pos[:, 1:].clone()
        sd["reg_token"] = sd.pop("register_tokens")
    return sd


def timm_architecture(backbone: VisionTransformer) -> str | None:
    """The timm model name with this layout, when timm has one."""
    if backbone.arch not in ("small", "base", "large") or backbone.patch_size != 14:
        return None
    if backbone.num_register_tokens == 4:
        return f"vit_{backbone.arch}_patch14_reg4_dinov2"
    if backbone.num_register_tokens == 0:
        return f"vit_{backbone.arch}_patch14_dinov2"
    return None


def export_backbone(backbone: VisionTransformer, cfg_dict: dict | None, out_dir: str | Path,
                    timm_layout: bool = False, source: str | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` + ``out_dir/config.json``; returns ``out_dir``.

    Args:
        backbone: the (teacher) ViT.
        cfg_dict: the resolved training config (stored in config.json for provenance), or None.
        out_dir: created if needed; existing files of the same names are replaced atomically.
        timm_layout: write timm's key names and 3-channel patch embedding instead of ours.
        source: where the weights came from (e.g. the checkpoint file name), for the record.
    """
    from safetensors.torch import save_file

    from mammodino import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layout = "timm" if timm_layout else "mammodino"
    state = to_timm_state_dict(backbone) if timm_layout else backbone.state_dict()
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    config = {
        "format": FORMAT,
        "layout": layout,
        **backbone_config(backbone),
        "in_chans": 3 if timm_layout else 1,
        "mammodino_version": __version__,
        "preprocessing": preprocess.describe(),
        "source": source,
        "training_config": cfg_dict,
    }
    if timm_layout:
        size = backbone.img_size
        config["timm"] = {
            "architecture": timm_architecture(backbone),
            "model_args": {"img_size": size, "num_classes": 0},
            "pretrained_cfg": {"input_size": [3, size, size], "mean": [preprocess.MEAN] * 3,
                               "std": [preprocess.STD] * 3, "num_classes": 0},
            "note": "grey image in [0,1] replicated to 3 channels, then (x - mean) / std",
        }
    # safetensors writes 0600; an export is meant to be shared
    atomic.atomic_write(out / MODEL_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": FORMAT, "layout": layout}),
                        mode=0o666 & ~atomic.umask())
    atomic.write_json(out / CONFIG_FILE, config, indent=2)
    return out
