"""Start from DINOv2 weights: import a local checkpoint file into a one-channel ViT.

Layouts recognised (each possibly under a prefix such as ``module.``, ``backbone.``,
``teacher.backbone.``, ``model.``, ``dinov2.``, or inside a wrapper dict such as
``{"model": ...}`` / ``{"teacher": ...}``):

* **official** ``dinov2_vit{s,b,l}14[_reg4]_pretrain.pth``: our own key names
  (``cls_token``, ``register_tokens``, ``pos_embed`` = CLS + 37x37 patches, ``mask_token``,
  ``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,
  mlp.fc2,ls2.gamma}``, ``norm``); DINOv2 *training* checkpoints with chunked blocks
  (``blocks.C.N.``) are un-chunked.
* **timm** ``vit_*_patch14[_reg4]_dinov2``: the same names, registers as ``reg_token``; for
  register models timm folds the CLS position into ``cls_token`` and ``pos_embed`` holds
  the patch grid only (``no_embed_class=True``); no ``mask_token``.
* **Hugging Face** ``Dinov2Model`` / ``Dinov2WithRegistersModel``: ``embeddings.*``,
  ``encoder.layer.N.attention.attention.{query,key,value}`` + ``attention.output.dense``
  (transformers 4 and the Hub's files) or ``attention.{q,k,v}_proj`` + ``attention.o_proj``
  (transformers 5); q, k, v are concatenated into ``qkv``; ``layer_scale1.lambda1``,
  ``layernorm``.

Adaptations: an RGB patch embedding is summed over its 3 input channels (a grey image
replicated to RGB gives the same response); position embeddings are resized bicubically to
the model's grid with the model's own interpolation. Any other shape difference is an
error that names the key. Every checkpoint key is accounted for in the returned
:class:`ImportReport` (loaded, unexpected, ignored); nothing is dropped silently.

Files are read locally and safely: ``.safetensors`` through safetensors, anything else
through ``torch.load(..., weights_only=True)``; a file that needs arbitrary Python objects
unpickled is refused. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from mammodino.errors import UserError
from mammodino.models import weight_checks
from mammodino.models.vit import grid_of, resample_patch_pos_embed

# Model keys that may legitimately be absent from a checkpoint (kept at their init).
OPTIONAL_KEYS = {"register_tokens", "mask_token"}


@dataclass
class ImportReport:
    """What an import did, key by key (model keys unless said otherwise)."""

    path: str
    layout: str
    prefix: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys left at their initialisation
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys (under prefix) used by nothing
    ignored: list[str] = field(default_factory=list)  # checkpoint keys outside the chosen prefix
    adapted: list[str] = field(default_factory=list)  # conversions applied, in words

    def __str__(self) -> str:
        parts = [f"{self.layout} layout, prefix {self.prefix!r}: {len(self.loaded)} tensors loaded"]
        if self.adapted:
            parts.append("adapted: " + "; ".join(self.adapted))
        if self.missing:
            parts.append(f"left at init: {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unused checkpoint keys: {_short(self.unexpected)}")
        if self.ignored:
            parts.append(f"{len(self.ignored)} keys outside the backbone ignored: {_short(self.ignored)}")
        return "; ".join(parts)


def _short(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


# ---- reading files --------------------------------------------------------------------------
def _flatten(obj, prefix: str, out: dict, skipped: list) -> None:
    if isinstance(obj, Tensor):
        out[prefix[:-1]] = obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}{key}.", out, skipped)
    else:
        skipped.append(f"{prefix[:-1]} (not a tensor)")


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], list[str]]:
    """All tensors of a local weight file, nested dicts flattened with '.'.

    Returns ``(tensors, skipped)`` where ``skipped`` lists non-tensor entries.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise UserError(f"weight file {path} does not exist (nothing is downloaded: give a local file)")
    weight_checks.require_regular_file(path, "weight file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        weight_checks.read_header(path)  # sizes and structure, before any tensor is read
        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                return {k: fh.get_tensor(k) for k in fh.keys()}, []
        except Exception as exc:  # safetensors has its own error types
            raise UserError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        try:  # memory-mapped: the declared sizes are checked before the data is touched
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Weights only load failed" in text or "Unsupported global" in text:
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise UserError(
                f"{path}: refused to load: the file needs arbitrary Python objects unpickled ({first}). "
                "Only plain tensor state dicts (torch.load weights_only=True) or .safetensors files are accepted; "
                "convert it to safetensors where you trust its source."
            ) from exc
        first = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{path}: cannot be read as a PyTorch or safetensors weight file ({type(exc).__name__}: {first})") from exc
    tensors: dict[str, Tensor] = {}
    skipped: list[str] = []
    try:
        _flatten(obj, "", tensors, skipped)
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a state dict") from None
    if not tensors:
        raise UserError(f"{path}: holds no tensors")
    weight_checks.check_tensor_sizes({k: tuple(v.shape) for k, v in tensors.items()},
                                     {k: v.element_size() for k, v in tensors.items()}, str(path))
    return tensors, skipped


# ---- recognising the layout ---------------------------------------------------------------
def _prefix_rank(prefix: str) -> tuple:
    # The teacher is the network DINOv2 evaluates; a bare backbone next; the student last.
    return ("teacher" not in prefix, "student" in prefix, len(prefix), prefix)


def find_backbone(keys) -> tuple[str, str, list[str]]:
    """(layout, prefix, all candidate prefixes) of the ViT backbone among checkpoint keys."""
    candidates: dict[str, str] = {}
    for key in keys:
        if key.endswith("embeddings.cls_token"):
            candidates[key[: -len("embeddings.cls_token")]] = "hf"
        elif key == "cls_token" or key.endswith(".cls_token"):
            candidates.setdefault(key[: -len("cls_token")], "official")
    if not candidates:
        return "", "", []
    prefix = min(candidates, key=_prefix_rank)
    return candidates[prefix], prefix, sorted(candidates)


_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.")
_HF_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_HF_BLOCK = {
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "attention.output.dense.weight": "attn.proj.weight", "attention.output.dense.bias": "attn.proj.bias",
    "attention.o_proj.weight": "attn.proj.weight", "attention.o_proj.bias": "attn.proj.bias",  # transformers 5
    "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias",
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}


def _from_hf(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str], list[str]]:
    out, source, unexpected = {}, {}, []
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in sd.items():
        if key in _HF_TOP:
            out[_HF_TOP[key]] = value
            source[_HF_TOP[key]] = key
            continue
        m = _HF_LAYER.match(key)
        if m:
            n, rest = m.groups()
            # transformers 4: attention.attention.{query,key,value}; 5: attention.{q,k,v}_proj
            qm = re.match(r"attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$", rest)
            if qm:
                part = qm.group(1) or {"q": "query", "k": "key", "v": "value"}[qm.group(2)]
                qkv.setdefault((n, qm.group(3)), {})[part] = (value, key)
                continue
            if rest in _HF_BLOCK:
                ours = f"blocks.{n}.{_HF_BLOCK[rest]}"
                out[ours] = value
                source[ours] = key
                continue
        unexpected.append(key)
    for (n, kind), parts in sorted(qkv.items()):
        if set(parts) != {"query", "key", "value"}:
            unexpected += [key for _, key in parts.values()]
            continue
        ours = f"blocks.{n}.attn.qkv.{kind}"
        out[ours] = torch.cat([parts[p][0] for p in ("query", "key", "value")], dim=0)
        source[ours] = " + ".join(parts[p][1] for p in ("query", "key", "value"))
    return out, source, unexpected


def _from_dinov2_or_timm(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str], list[str]]:
    out, source = {}, {}
    for key, value in sd.items():
        ours = _CHUNKED.sub(r"blocks.\1.", key)
        if ours == "reg_token":
            ours = "register_tokens"
        out[ours] = value
        source[ours] = key
    return out, source, []


def convert_state_dict(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str], ImportReport]:
    """Checkpoint tensors -> (our key names, source key of each, partial report).

    ``pos_embed`` is returned in our layout (1, 1 + h*w, D): a timm register-model
    ``pos_embed`` without a CLS position gets a zero CLS position (timm already folded it
    into ``cls_token``).
    """
    layout, prefix, prefixes = find_backbone(tensors)
    report = ImportReport(path="", layout=layout or "unknown", prefix=prefix)
    if not layout:
        return {}, {}, report
    sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    report.ignored = sorted(k for k in tensors if not k.startswith(prefix))
    if layout == "hf":
        out, source, unexpected = _from_hf(sub)
    else:
        out, source, unexpected = _from_dinov2_or_timm(sub)
        if "reg_token" in sub or ("mask_token" not in sub and "register_tokens" not in sub):
            layout = report.layout = "timm"
    report.unexpected = [prefix + k for k in unexpected]
    source = {k: prefix + v for k, v in source.items()}
    pos = out.get("pos_embed")
    if pos is not None:
        if pos.ndim == 2:
            pos = pos.unsqueeze(0)
        n = pos.shape[1]
        if _is_square(n) and not _is_square(n - 1):
            # timm no_embed_class: patches only; CLS position already inside cls_token.
            out["pos_embed"] = torch.cat([pos.new_zeros(1, 1, pos.shape[-1]), pos], dim=1)
            report.adapted.append("pos_embed without a CLS position (timm no_embed_class): CLS position set to 0")
        else:
            out["pos_embed"] = pos
    if len(prefixes) > 1:
        report.adapted.append(f"chose backbone prefix {prefix!r} among {prefixes}")
    return out, source, report


def _is_square(n: int) -> bool:
    return n >= 1 and int(n ** 0.5 + 0.5) ** 2 == n


# ---- loading into a model -------------------------------------------------------------------
def _adapt(key: str, src: Tensor, target: Tensor, model: nn.Module, origin: str, path, notes: list[str]) -> Tensor:
    if key == "patch_embed.proj.weight" and src.ndim == 4 and src.shape[1] != target.shape[1]:
        if target.shape[1] == 1:
            notes.append(f"patch_embed.proj.weight: {src.shape[1]} input channels summed into 1")
            src = src.sum(dim=1, keepdim=True)
        else:
            raise UserError(f"{path}: {origin} has {src.shape[1]} input channels; the model expects {target.shape[1]}")
    if key == "pos_embed" and src.shape != target.shape:
        if src.ndim != 3 or src.shape[-1] != target.shape[-1]:
            raise UserError(f"{path}: {origin} has shape {tuple(src.shape)}; the model's pos_embed is {tuple(target.shape)}")
        try:
            side = grid_of(src.shape[1] - 1)
        except ValueError:
            raise UserError(f"{path}: {origin} has {src.shape[1] - 1} patch positions, which do not form a "
                            "square grid") from None
        patch = resample_patch_pos_embed(src[:, 1:], (side, side), model.grid_size, model.interpolate_antialias)
        src = torch.cat([src[:, :1], patch], dim=1)
        notes.append(f"pos_embed: {side}x{side} -> {model.grid_size[0]}x{model.grid_size[1]} grid (bicubic)")
    if key == "mask_token" and src.ndim == 3 and target.ndim == 2:
        src = src.reshape(target.shape)
    if src.shape != target.shape:
        hint = ""
        if key in ("cls_token", "register_tokens", "norm.weight"):
            hint = " (is model.arch / num_register_tokens the one of the checkpoint?)"
        if key == "patch_embed.proj.weight":
            hint = " (is model.patch_size the one of the checkpoint?)"
        raise UserError(f"{path}: {origin} has shape {tuple(src.shape)} but the model's {key} is "
                        f"{tuple(target.shape)}{hint}")
    return src


def load_dinov2_weights(model: nn.Module, path: str | Path, strict: bool = True,
                        weights: tuple[dict[str, Tensor], list[str]] | None = None) -> ImportReport:
    """Import a local DINOv2 / timm / Hugging Face (or mammodino) checkpoint into ``model``.

    Args:
        model: a :class:`~mammodino.models.vit.VisionTransformer` (any grid, 1 channel).
        path: ``.pth`` / ``.pt`` / ``.bin`` (read with ``weights_only=True``) or ``.safetensors``.
        strict: raise when a model weight other than ``register_tokens`` / ``mask_token``
            is absent from the checkpoint, or when the checkpoint has blocks or register
            tokens the model lacks.
        weights: ``read_weights(path)`` when the caller has already read the file (the
            model was sized from it), so a multi-GB file is read once.

    Returns:
        An :class:`ImportReport`; ``str(report)`` is a one-paragraph summary.

    Example:
        >>> vit = build_vit("small", num_register_tokens=4)
        >>> print(load_dinov2_weights(vit, "dinov2_vits14_reg4_pretrain.pth"))
    """
    tensors, skipped = weights if weights is not None else read_weights(path)
    converted, source, report = convert_state_dict(tensors)
    report.path = str(path)
    report.ignored += skipped
    if not converted:
        raise UserError(f"{path}: no ViT backbone found (no key ending in 'cls_token'); first keys: "
                        f"{_short(sorted(tensors), 8)}")
    state = model.state_dict()
    used: set[str] = set()
    with torch.no_grad():
        for key, target in state.items():
            if key not in converted:
                report.missing.append(key)
                continue
            value = _adapt(key, converted[key], target, model, source.get(key, key), path, report.adapted)
            target.copy_(value.to(dtype=target.dtype))
            report.loaded.append(key)
            used.add(key)
    report.unexpected += [source.get(k, k) for k in sorted(converted) if k not in used]
    for key in report.missing:
        if key in OPTIONAL_KEYS:
            report.adapted.append(f"{key}: not in the checkpoint, kept at initialisation")
    if strict:
        required = [k for k in report.missing if k not in OPTIONAL_KEYS]
        if required:
            raise UserError(f"{path}: the model needs {len(required)} weights the checkpoint lacks: "
                            f"{_short(required, 8)} (wrong model.arch, or a checkpoint of another kind?); "
                            f"unused checkpoint keys: {_short(report.unexpected, 8) or 'none'}")
        extra = [k for k in report.unexpected
                 if re.search(r"(^|\.)(blocks\.\d+\.|encoder\.layer\.\d+\.|register_tokens$|reg_token$)", k)]
        if extra:
            raise UserError(f"{path}: the checkpoint has weights the model lacks: {_short(extra, 8)} "
                            "(deeper model, or register tokens: check model.arch and model.num_register_tokens)")
    return report
