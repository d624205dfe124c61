"""The one model loader: every way a backbone enters mammodino goes through here.

Sources (told apart by :func:`source_kind`):

* ``random-init``         an untrained preset, seeded (baselines run through the same code);
* ``training-checkpoint`` a ``pretrain`` checkpoint or run folder (its newest checkpoint),
                          ``teacher.backbone.*`` / ``student.backbone.*`` tensors + the
                          resolved config as JSON metadata;
* ``exported-encoder``    a ``mammodino export`` folder (or its ``model.safetensors``), our
                          key names or timm's;
* ``dinov2-import``       an official DINOv2 / timm / Hugging Face weight file, imported into
                          a one-channel ViT.

Each loader does the same three steps: read the header (or config) -> **plan** the
architecture from shapes alone, checked before anything is allocated
(:mod:`mammodino.models.weight_checks`; the ViT preset is named by
:func:`mammodino.models.vit.arch_of`) -> build and load the tensors. ``embed``,
``probe --perturb``, ``attention``, ``export``, ``finetune``, ``predict`` and
:func:`mammodino.load_encoder` all call this module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from mammodino.errors import UserError
from mammodino.models import preprocess, weight_checks
from mammodino.models.dinov2_import import convert_state_dict, load_dinov2_weights, read_weights
from mammodino.models.vit import VisionTransformer, arch_of, build_vit

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


# ---- describing a backbone ------------------------------------------------------------------
def backbone_config(backbone: VisionTransformer) -> dict:
    """The architecture of a built backbone, as stored in an export's config.json."""
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


def build_from_config(config: dict, where: str, layerscale_init: float | None = 1e-5) -> VisionTransformer:
    """An (unloaded) ViT of the architecture a config.json states, checked first."""
    build = weight_checks.check_arch_config(config, where)
    return build_vit(build["arch"], patch_size=build["patch_size"], num_register_tokens=build["num_register_tokens"],
                     img_size=build["img_size"], layerscale_init=layerscale_init,
                     interpolate_antialias=bool(build.get("interpolate_antialias", False)))


def _build_and_load(tensors: dict[str, Tensor], build: dict, config: dict | None, where: str) -> VisionTransformer:
    """A ViT of the checked architecture ``build`` (:func:`weight_checks.plan_backbone`), loaded."""
    antialias = (config or {}).get("interpolate_antialias", False)
    vit = build_vit(**build, interpolate_antialias=antialias if isinstance(antialias, bool) else False)
    missing, unexpected = vit.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise UserError(f"{where}: backbone weights do not fit a {build['arch']} ViT "
                        f"(missing: {missing[:6]}, unexpected: {unexpected[:6]})")
    weight_checks.check_finite(tensors, where)
    return vit.eval()


# ---- telling sources apart ------------------------------------------------------------------
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


def _is_training_checkpoint(path: Path) -> bool:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return any(k.startswith(("teacher.backbone.", "student.backbone.")) for k in fh.keys())
    except Exception:  # noqa: BLE001 (not a safetensors file: let the importer say why)
        return False


def source_kind(path: Path) -> str:
    """``training-checkpoint`` | ``exported-encoder`` | ``dinov2-import`` for an existing path."""
    if path.is_dir():
        return "exported-encoder" if (path / MODEL_FILE).exists() else "training-checkpoint"
    if path.suffix == ".safetensors":
        if _is_training_checkpoint(path):
            return "training-checkpoint"
        if (path.parent / CONFIG_FILE).exists():
            return "exported-encoder"
    return "dinov2-import"


# ---- the one entry point --------------------------------------------------------------------
def load_backbone(
    checkpoint: str | Path | None = None,
    which: str = "teacher",
    random_init: bool = False,
    arch: str | None = None,
    patch_size: int | None = None,
    num_register_tokens: int = 4,
    seed: int = 0,
    layerscale_init: float | None = 1e-5,
    img_size: int = 224,
) -> tuple[nn.Module, dict]:
    """The backbone (eval mode) and a JSON-able description of where it came from.

    ``checkpoint`` may be a run folder or training checkpoint (``which`` = teacher | student),
    an exported encoder folder or file, or a DINOv2 weight file (``arch`` / ``patch_size``
    override what the weights imply). ``random_init`` builds an untrained ``arch`` with
    ``seed`` instead. The description is enough to rebuild a random-init model
    (``load_backbone(random_init=True, **info minus "source")``).
    """
    if random_init:
        return _random_init(arch or "tiny", patch_size or 16, num_register_tokens, seed, layerscale_init, img_size)
    if checkpoint is None:
        raise UserError("give a CHECKPOINT (run folder, checkpoint, exported encoder or DINOv2 file) or --random-init")
    path = Path(checkpoint)
    if not path.exists():
        raise UserError(f"checkpoint {path}: no such file or folder")
    kind = source_kind(path)
    if kind == "training-checkpoint":
        path = resolve_checkpoint(path)
        model, cfg = backbone_from_checkpoint(path, which=which)
        info = {"which": which}
    elif kind == "exported-encoder":
        model, info = load_encoder(path), {}
    else:
        model, report = _from_dinov2(path, arch, patch_size)
        info = {"num_register_tokens": model.num_register_tokens, "import_report": str(report)}
    described = {"source": kind, "checkpoint": str(path), "arch": model.arch, "patch_size": int(model.patch_size)}
    return model.eval(), {**described, **info}


def _random_init(arch, patch_size, num_register_tokens, seed, layerscale_init, img_size):
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = build_vit(arch, patch_size=patch_size, num_register_tokens=num_register_tokens,
                      layerscale_init=layerscale_init, img_size=img_size)
    torch.random.set_rng_state(gen_state)
    info = {"source": "random-init", "arch": arch, "patch_size": patch_size,
            "num_register_tokens": num_register_tokens, "seed": seed,
            "layerscale_init": layerscale_init, "img_size": img_size}
    return model.eval(), info


# ---- training checkpoints -------------------------------------------------------------------
def _strip_wrappers(key: str) -> str:
    return re.sub(r"^(module\.|_orig_mod\.)+", "", key)


def backbone_from_checkpoint(path: str | Path, which: str = "teacher") -> tuple[VisionTransformer, dict]:
    """(backbone in eval mode, resolved training config) from a training checkpoint.

    ``path`` is a ``checkpoint-*.safetensors`` file (or a run folder: its newest checkpoint);
    ``which`` is ``teacher`` (the network to use) or ``student``. A checkpoint of a method
    without a teacher (``method: mae | simmim``) holds only the student's encoder, which is then
    the network to use for either value. The header, the config metadata and every backbone
    shape are checked before any tensor is read.
    """
    from safetensors import safe_open

    if which not in ("teacher", "student"):
        raise UserError(f"which must be 'teacher' or 'student', got {which!r}")
    path = resolve_checkpoint(path)
    prefix = f"{which}.backbone."
    header = weight_checks.read_header(path, "checkpoint")
    config = weight_checks.json_metadata(header.metadata.get("config"), path)
    if (which == "teacher" and not any(k.startswith("teacher.") for k in header.tensors)
            and any(k.startswith("student.backbone.") for k in header.tensors)):
        prefix = "student.backbone."  # MAE / SimMIM: no teacher, the student is the encoder
    names = {k: _strip_wrappers(k[len(prefix):]) for k in header.tensors if k.startswith(prefix)}
    if not names:
        tops = sorted({".".join(k.split(".")[:2]) for k in header.tensors})
        raise UserError(f"{path}: no '{prefix}*' tensors (found prefixes: {', '.join(tops[:10]) or 'none'})")
    where = f"{path} [{which}]"
    build = weight_checks.plan_backbone({names[k]: header.tensors[k].shape for k in names}, where,
                                        dtypes={names[k]: header.tensors[k].dtype for k in names}, config=config)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            tensors = {names[k]: fh.get_tensor(k) for k in names}
    except Exception as exc:  # noqa: BLE001 - safetensors' own error types
        raise UserError(f"{path}: not a readable safetensors checkpoint ({str(exc)[:200]})") from exc
    return _build_and_load(tensors, build, config, where), config


# ---- exported encoders ----------------------------------------------------------------------
def load_encoder(path: str | Path, map_location="cpu") -> nn.Module:
    """An exported encoder (folder or its ``model.safetensors``), ready in eval mode.

    Also accepts a training checkpoint (its teacher backbone; MAE / SimMIM: the student's). The returned ViT carries the
    export's config as ``encoder_config``; feed it ``preprocess.normalize(x)`` of one-channel
    images in [0, 1] (see ``encoder_config["preprocessing"]``).

    Example:
        >>> enc = mammodino.load_encoder("runs/demo/encoder")
        >>> cls = enc(normalize(img))     # (B, D)
    """
    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise UserError(f"{path}: no {MODEL_FILE} here (expected an export folder written by `mammodino export`)")
    header = weight_checks.read_header(model_file)
    meta = header.metadata
    if "config" in meta and any(k.startswith(("teacher.backbone.", "student.backbone.")) for k in header.tensors):
        vit, config = backbone_from_checkpoint(model_file, "teacher")
        vit.encoder_config = {"format": "training-checkpoint", **backbone_config(vit),
                              "preprocessing": preprocess.describe(), "training_config": config}
        return vit.to(map_location)
    config_file = model_file.parent / CONFIG_FILE
    config = weight_checks.read_config_json(config_file) if os.path.lexists(config_file) else {}
    layout = config.get("layout") or meta.get("layout") or "mammodino"
    if layout not in ("timm", "mammodino"):
        raise UserError(f"{config_file}: 'layout' is {str(layout)[:40]!r}; 'mammodino' or 'timm' expected")
    if layout == "timm":
        if not config:
            raise UserError(f"{model_file}: a timm-layout file needs its {CONFIG_FILE} beside it")
        vit = build_from_config(config, str(config_file))
        load_dinov2_weights(vit, model_file, strict=True)
        weight_checks.check_finite(vit.state_dict(), str(model_file))
        vit.eval()
    else:
        from safetensors.torch import load_file

        weight_checks.check_arch_config(config, str(config_file), required=())
        build = weight_checks.plan_backbone(header.shapes(), str(model_file), dtypes=header.dtypes(),
                                            config={"model": config})
        try:
            tensors = load_file(str(model_file))
        except Exception as exc:  # noqa: BLE001 - safetensors' own error types
            raise UserError(f"{model_file}: not a readable safetensors file ({str(exc)[:200]})") from exc
        vit = _build_and_load(tensors, build, config, str(model_file))
    vit.encoder_config = config
    return vit.to(map_location)


# ---- DINOv2 / timm / Hugging Face weight files ----------------------------------------------
_BACKBONE_KEY = re.compile(r"^(cls_token|pos_embed|register_tokens|patch_embed\.|blocks\.\d+\.|norm\.)")
_ST_DTYPE = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64"}


def plan_dinov2(path: Path, tensors: dict | None = None) -> dict:
    """``build_vit`` arguments of a DINOv2 / timm / HF weight file, from its converted shapes
    (the importer's own safe reader and key conversion; no pickle). ``tensors``: the file's
    ``read_weights`` tensors when the caller already has them."""
    if tensors is None:
        tensors, _skipped = read_weights(path)
    converted, _source, _report = convert_state_dict(tensors)
    if "cls_token" not in converted:
        raise UserError(f"{path}: no ViT backbone found in the weights (no cls_token)")
    shapes = {k: tuple(v.shape) for k, v in converted.items() if _BACKBONE_KEY.match(k)}
    w = shapes.get("patch_embed.proj.weight")
    if w is not None and len(w) == 4 and w[1] not in (1, 3):  # any channel count is summed into one on import
        shapes["patch_embed.proj.weight"] = (w[0], 1, *w[2:])
    dtypes = {k: _ST_DTYPE.get(v.dtype, str(v.dtype)) for k, v in converted.items() if k in shapes}
    return weight_checks.plan_backbone(shapes, str(path), dtypes=dtypes)


def _from_dinov2(path: Path, arch: str | None, patch_size: int | None):
    if patch_size is not None and (not isinstance(patch_size, int) or not 1 <= patch_size <= 64):
        raise UserError(f"--patch-size {patch_size}: an integer in [1, 64] expected")
    weights = read_weights(path)  # read once: sized and loaded from the same tensors
    plan = plan_dinov2(path, weights[0])
    patch = patch_size or plan["patch_size"]
    grid = plan["img_size"] // plan["patch_size"]
    model = build_vit(arch or plan["arch"], patch_size=patch, num_register_tokens=plan["num_register_tokens"],
                      img_size=grid * patch)
    report = load_dinov2_weights(model, path, weights=weights)
    return model, report
