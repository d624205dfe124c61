"""Export a trained backbone, and load it back as a ready encoder.

An export folder ``OUT`` holds::

    OUT/model.safetensors   the backbone weights (our key names, or timm's with --timm)
    OUT/config.json         architecture, preprocessing, mammodino version, training config

``load_encoder(OUT)`` (also ``mammodino.load_encoder``) rebuilds the ViT in eval mode from
either layout. ``backbone_from_checkpoint`` reads a *training* checkpoint -- one safetensors
file with ``teacher.backbone.*`` / ``student.backbone.*`` tensors and the resolved config as
JSON under the metadata key ``config`` -- so ``export``, ``embed`` and ``attention`` share
one loader.

The timm layout (``timm_layout=True``) is the state dict of timm's
``vit_{small,base,large}_patch14_reg4_dinov2`` (``no_embed_class=True``): ``reg_token``,
the CLS position folded into ``cls_token``, ``pos_embed`` over the patch grid only, and a
3-channel patch embedding (our filter / 3 per channel), so a grey image replicated to RGB
gives exactly our output. Load it in timm with e.g.::

    timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=True, num_classes=0, img_size=224,
                      pretrained_cfg_overlay=dict(file="OUT/model.safetensors"))
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from mammodino.errors import UserError
from mammodino.models import preprocess
from mammodino.models.vit import ARCHS, VisionTransformer, arch_of, build_vit, grid_of

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
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


# ---- describing a backbone ------------------------------------------------------------------
def backbone_config(backbone: VisionTransformer) -> dict:
    return {
        "arch": backbone.arch or arch_of(backbone.embed_dim, len(backbone.blocks), backbone.num_heads),
        "patch_size": backbone.patch_size,
        "num_register_tokens": backbone.num_register_tokens,
        "embed_dim": backbone.embed_dim,
        "depth": len(backbone.blocks),
        "num_heads": backbone.num_heads,
        "mlp_ratio": backbone.mlp_ratio,
        "img_size": backbone.img_size,
        "interpolate_antialias": backbone.interpolate_antialias,
    }


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
    tmp = out / (MODEL_FILE + ".partial")
    save_file(state, str(tmp), metadata={"format": FORMAT, "layout": layout})
    os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes 0600; an export is meant to be shared
    os.replace(tmp, out / MODEL_FILE)
    tmp_cfg = out / (CONFIG_FILE + ".partial")
    tmp_cfg.write_text(json.dumps(config, indent=2, default=str) + "\n")
    os.replace(tmp_cfg, out / CONFIG_FILE)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- training checkpoints -------------------------------------------------------------------
def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest one of a run folder (``checkpoint-last`` first)."""
    path = Path(path)
    if path.is_dir():
        last = path / "checkpoint-last.safetensors"
        if last.is_file():
            return last
        numbered = sorted(path.glob("checkpoint-[0-9]*.safetensors"))
        if numbered:
            return numbered[-1]
        raise UserError(f"{path}: a folder without checkpoint-*.safetensors files")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    return path


def _infer_shape(tensors: dict[str, Tensor], config: dict, where: str) -> dict:
    """Architecture from the tensors themselves (the config only breaks ties)."""
    try:
        dim = tensors["cls_token"].shape[-1]
        patch = tensors["patch_embed.proj.weight"].shape[-1]
        in_chans = tensors["patch_embed.proj.weight"].shape[1]
        n_pos = tensors["pos_embed"].shape[1]
    except KeyError as exc:
        raise UserError(f"{where}: no backbone weight {exc.args[0]!r}") from exc
    depth = 1 + max((int(m.group(1)) for k in tensors if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    regs = tensors["register_tokens"].shape[1] if "register_tokens" in tensors else 0
    model_cfg = (config or {}).get("model", {}) or {}
    arch = model_cfg.get("arch")
    if arch not in ARCHS or ARCHS[arch][:2] != (dim, depth):
        arch = next((name for name, (d, n, _) in ARCHS.items() if (d, n) == (dim, depth)), None)
    if arch is None:
        raise UserError(f"{where}: embed_dim {dim} / depth {depth} match no preset ({', '.join(ARCHS)})")
    return {"arch": arch, "patch_size": patch, "num_register_tokens": regs, "in_chans": in_chans,
            "img_size": grid_of(n_pos - 1) * patch}


def _build_and_load(tensors: dict[str, Tensor], config: dict, where: str) -> VisionTransformer:
    shape = _infer_shape(tensors, config, where)
    vit = build_vit(shape["arch"], patch_size=shape["patch_size"], num_register_tokens=shape["num_register_tokens"],
                    img_size=shape["img_size"], in_chans=shape["in_chans"],
                    interpolate_antialias=bool((config or {}).get("interpolate_antialias", False)))
    missing, unexpected = vit.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise UserError(f"{where}: backbone weights do not fit a {shape['arch']} ViT "
                        f"(missing: {missing[:6]}, unexpected: {unexpected[:6]})")
    return vit.eval()


def backbone_from_checkpoint(path: str | Path, which: str = "teacher") -> tuple[VisionTransformer, dict]:
    """(backbone in eval mode, resolved training config) from a training checkpoint.

    ``path`` is a ``checkpoint-*.safetensors`` file (or a run folder: its newest checkpoint);
    ``which`` is ``teacher`` (the network to use) or ``student``. A checkpoint of a method
    without a teacher (``method: mae | simmim``) has only the student's encoder, which is then
    the network to use for either value.
    """
    from safetensors import safe_open

    if which not in ("teacher", "student"):
        raise UserError(f"which must be 'teacher' or 'student', got {which!r}")
    path = resolve_checkpoint(path)
    prefix = f"{which}.backbone."
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            keys = list(fh.keys())
            if (which == "teacher" and not any(k.startswith("teacher.") for k in keys)
                    and any(k.startswith("student.backbone.") for k in keys)):
                prefix = "student.backbone."  # MAE / SimMIM: no teacher, the student is the encoder
            tensors = {k[len(prefix):]: fh.get_tensor(k) for k in keys if k.startswith(prefix)}
    except Exception as exc:
        raise UserError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    config = _json_meta(meta.get("config"), path)
    if not tensors:
        tops = sorted({".".join(k.split(".")[:2]) for k in keys})
        raise UserError(f"{path}: no '{prefix}*' tensors (found prefixes: {', '.join(tops[:10]) or 'none'})")
    tensors = {re.sub(r"^(module\.|_orig_mod\.)+", "", k): v for k, v in tensors.items()}
    return _build_and_load(tensors, config, f"{path} [{which}]"), config


def _json_meta(value, path) -> dict:
    if value is None:
        return {}
    try:
        out = json.loads(value)
        if isinstance(out, str):  # stored twice-encoded
            out = json.loads(out)
    except (TypeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: metadata 'config' is not JSON ({exc})") from exc
    return out if isinstance(out, dict) else {}


# ---- loading an export ----------------------------------------------------------------------
def load_encoder(path: str | Path, map_location="cpu") -> nn.Module:
    """An exported encoder (folder or its ``model.safetensors``), ready in eval mode.

    Also accepts a training checkpoint (its teacher backbone; MAE / SimMIM: the student's). The returned ViT carries the
    export's config as ``encoder_config``; feed it ``preprocess.normalize(x)`` of one-channel
    images in [0, 1] (see ``encoder_config["preprocessing"]``).

    Example:
        >>> enc = mammodino.load_encoder("runs/demo/encoder")
        >>> cls = enc(normalize(img))     # (B, D)
    """
    from safetensors import safe_open

    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise UserError(f"{path}: no {MODEL_FILE} here (expected an export folder written by `mammodino export`)")
    with safe_open(str(model_file), framework="pt", device="cpu") as fh:
        meta = fh.metadata() or {}
        keys = list(fh.keys())
    if "config" in meta and any(k.startswith(("teacher.backbone.", "student.backbone.")) for k in keys):
        vit, config = backbone_from_checkpoint(model_file, "teacher")
        vit.encoder_config = {"format": "training-checkpoint", **backbone_config(vit),
                              "preprocessing": preprocess.describe(), "training_config": config}
        return vit.to(map_location)
    config_file = model_file.parent / CONFIG_FILE
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    layout = config.get("layout") or meta.get("layout") or "mammodino"
    if layout == "timm":
        from mammodino.models.dinov2_import import load_dinov2_weights

        if not config:
            raise UserError(f"{model_file}: a timm-layout file needs its {CONFIG_FILE} beside it")
        vit = build_vit(config["arch"], patch_size=config["patch_size"],
                        num_register_tokens=config["num_register_tokens"], img_size=config["img_size"],
                        interpolate_antialias=bool(config.get("interpolate_antialias", False)))
        load_dinov2_weights(vit, model_file, strict=True)
        vit.eval()
    else:
        from safetensors.torch import load_file

        vit = _build_and_load(load_file(str(model_file)), {"model": config, **config}, str(model_file))
    vit.encoder_config = config
    return vit.to(map_location)
