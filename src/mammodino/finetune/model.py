"""The fine-tuned screening model: a ViT backbone + a classification head, and its files.

``DIR/model.safetensors`` holds ``backbone.*`` and ``head.*`` tensors (written atomically,
no pickle); ``DIR/config.json`` says how to rebuild and feed it: the ViT shape, the head,
the task(s) and class names, single- or multi-label, the calibration (temperature and bias
fitted on the validation split) and the input geometry (resolution, padding, normalisation).
:func:`load_finetuned` rebuilds the model from these two files alone.

Example:
    >>> model, cfg = load_finetuned("runs/ft-lesion")
    >>> probs = model.probabilities(x, token_mask)     # calibrated, (B, n_outputs)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from mammodino import atomic
from mammodino.errors import UserError
from mammodino.finetune.heads import build_head
from mammodino.models.layers import DropPath
from mammodino.models.loading import backbone_config, build_from_config
from mammodino.models.weight_checks import check_arch_config, read_config_json
from mammodino.train.checkpoint import load_checkpoint, save_checkpoint

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "mammodino-finetuned-1"


def set_drop_path(backbone: nn.Module, rate: float) -> None:
    """Stochastic depth, linear over depth up to ``rate`` (a loaded encoder comes without)."""
    blocks = list(backbone.blocks)
    rates = torch.linspace(0, float(rate), len(blocks)).tolist()
    for blk, r in zip(blocks, rates):
        blk.drop_path1 = DropPath(r) if r > 0 else nn.Identity()
        blk.drop_path2 = DropPath(r) if r > 0 else nn.Identity()
        blk.sample_drop_ratio = r


class FineTuneModel(nn.Module):
    """``backbone`` tokens -> ``head`` logits, with calibration buffers.

    ``multilabel``: outputs are independent sigmoids (one per task) instead of a softmax.
    ``temperature`` / ``bias`` are identity until :meth:`set_calibration`.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, multilabel: bool = False,
                 grad_checkpointing: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.multilabel = bool(multilabel)
        self.grad_checkpointing = bool(grad_checkpointing)
        n_out = head.fc.out_features
        self.register_buffer("temperature", torch.ones(1 if not multilabel else n_out))
        self.register_buffer("bias", torch.zeros(n_out))

    @property
    def patch_size(self) -> int:
        return int(self.backbone.patch_size)

    def tokens(self, x: Tensor) -> dict:
        """Normalised CLS and patch tokens (registers dropped)."""
        bb = self.backbone
        t = bb.prepare_tokens_with_masks(x)
        for blk in bb.blocks:
            if self.grad_checkpointing and self.training and t.requires_grad:
                t = _checkpoint(blk, t, use_reentrant=False)
            else:
                t = blk(t)
        t = bb.norm(t)
        return {"cls": t[:, 0], "patches": t[:, 1 + bb.num_register_tokens:]}

    def forward(self, x: Tensor, token_mask: Tensor | None = None, backbone_grad: bool = True) -> Tensor:
        """Raw (uncalibrated) logits. ``backbone_grad=False`` trains the head alone (warm start)."""
        if backbone_grad:
            tokens = self.tokens(x)
        else:
            with torch.no_grad():
                tokens = self.tokens(x)
        return self.head(tokens, token_mask)

    def calibrated_logits(self, logits: Tensor) -> Tensor:
        return logits.float() / self.temperature + self.bias

    def probabilities(self, x: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """Calibrated class probabilities (B, n_outputs)."""
        z = self.calibrated_logits(self.forward(x, token_mask))
        return torch.sigmoid(z) if self.multilabel else torch.softmax(z, dim=1)

    def set_calibration(self, temperature, bias) -> None:
        self.temperature.copy_(torch.as_tensor(temperature, dtype=torch.float32).reshape(self.temperature.shape))
        self.bias.copy_(torch.as_tensor(bias, dtype=torch.float32).reshape(self.bias.shape))

    # ---- which parameters train --------------------------------------------------------
    def set_trainable(self, mode: str, unfreeze_blocks: int = 4) -> None:
        """``full``: everything; ``partial``: the last ``unfreeze_blocks`` blocks, the final norm
        and the head; ``frozen``: the head only (a probe trained end to end by SGD)."""
        for p in self.backbone.parameters():
            p.requires_grad_(mode == "full")
        if mode == "partial":
            n = len(self.backbone.blocks)
            for blk in list(self.backbone.blocks)[max(0, n - int(unfreeze_blocks)):]:
                for p in blk.parameters():
                    p.requires_grad_(True)
            for p in self.backbone.norm.parameters():
                p.requires_grad_(True)
        elif mode not in ("full", "frozen"):
            raise ValueError(f"unknown fine-tune mode {mode!r} (full, partial, frozen)")
        for p in self.head.parameters():
            p.requires_grad_(True)


def build_model(backbone: nn.Module, cfg, n_outputs: int, multilabel: bool) -> FineTuneModel:
    """Backbone (already loaded) + a fresh head as ``cfg.model`` describes."""
    set_drop_path(backbone, float(cfg.model.drop_path_rate) if cfg.finetune.mode != "frozen" else 0.0)
    head = build_head(str(cfg.model.head), int(backbone.embed_dim), n_outputs, hidden=int(cfg.model.attention_hidden),
                      dropout=float(cfg.model.dropout))
    model = FineTuneModel(backbone, head, multilabel=multilabel, grad_checkpointing=bool(cfg.model.grad_checkpointing))
    model.set_trainable(str(cfg.finetune.mode), int(cfg.finetune.unfreeze_blocks))
    return model


# ---- files ---------------------------------------------------------------------------------
def model_description(model: FineTuneModel) -> dict:
    """What :func:`load_finetuned` needs to rebuild the network."""
    head = model.head
    return {
        "encoder": {**backbone_config(model.backbone),
                    "layerscale": any(".ls1." in k for k in model.backbone.state_dict())},
        "head": {"kind": head.kind, "n_outputs": int(head.fc.out_features),
                 "hidden": int(head.V.out_features) if hasattr(head, "V") else None},
        "multilabel": model.multilabel,
    }


def save_finetuned(model: FineTuneModel, out_dir: str | Path, info: dict) -> Path:
    """``out_dir/model.safetensors`` (weights + calibration) and ``out_dir/config.json``
    (``model_description`` + ``info``: task, classes, preprocessing, provenance)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, **model_description(model), **info}
    tensors = {k: v.detach().float() for k, v in model.state_dict().items()}
    save_checkpoint(out / MODEL_FILE, tensors, {"format": FORMAT})
    atomic.write_json(out / CONFIG_FILE, config)
    return out


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir)
    cfg_file = path / CONFIG_FILE if path.is_dir() else path.parent / CONFIG_FILE
    if not os.path.lexists(cfg_file):
        raise UserError(f"{path}: no {CONFIG_FILE} (expected a folder written by `mammodino finetune`)")
    config = read_config_json(cfg_file)  # regular file, bounded size, a JSON object
    if config.get("format") != FORMAT:
        raise UserError(f"{cfg_file}: format {config.get('format')!r} is not a fine-tuned mammodino model ({FORMAT})")
    return config


def load_finetuned(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[FineTuneModel, dict]:
    """(model in eval mode, config.json) of a ``mammodino finetune`` output folder."""
    path = Path(model_dir)
    config = read_config(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    cfg_file = model_file.parent / CONFIG_FILE
    enc, head_cfg = config.get("encoder"), config.get("head")
    if not isinstance(enc, dict) or not isinstance(head_cfg, dict):
        raise UserError(f"{cfg_file}: 'encoder' and 'head' must be JSON objects")
    check_arch_config(enc, f"{cfg_file} [encoder]")  # before anything is allocated
    tensors, _meta = load_checkpoint(model_file)
    try:
        return _build_finetuned(enc, head_cfg, config, tensors, model_file, device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{model_file}: does not fit the model in {CONFIG_FILE} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def _build_finetuned(enc: dict, head_cfg: dict, config: dict, tensors: dict, model_file: Path, device):
    backbone = build_from_config(enc, f"{model_file.parent / CONFIG_FILE} [encoder]",
                                 layerscale_init=1e-5 if enc.get("layerscale", True) else None)
    head = build_head(head_cfg["kind"], int(enc["embed_dim"]), int(head_cfg["n_outputs"]),
                      hidden=int(head_cfg.get("hidden") or 128))
    model = FineTuneModel(backbone, head, multilabel=bool(config.get("multilabel")))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise UserError(f"{model_file}: weights do not fit the model in {CONFIG_FILE} "
                        f"(missing {missing[:4]}, unexpected {unexpected[:4]})")
    return model.to(device).eval(), config
