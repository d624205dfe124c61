"""AdamW parameter groups: layer-wise lr decay, patch-embed lr multiplier, no decay on
biases, norms and tokens, and the last layer in groups of its own (``is_last_layer``), so the
training step can freeze it (train.step drops its gradients; there is no second mechanism)."""

from __future__ import annotations

import torch
from torch import nn


def layer_id(name: str, n_blocks: int) -> int:
    """0 for embeddings, i+1 for block i, n_blocks+1 for everything after (norm, heads)."""
    if name.startswith(("cls_token", "pos_embed", "mask_token", "register_tokens", "patch_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return n_blocks + 1


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim <= 1 or name.endswith(".bias") or "token" in name or "pos_embed" in name or ".gamma" in name


def param_groups(modules: dict[str, nn.Module], n_blocks: int, layerwise_decay: float,
                 patch_embed_lr_mult: float) -> list[dict]:
    """Parameters grouped by (lr multiplier, weight-decay multiplier, last layer).

    ``modules`` maps a prefix ("backbone", "dino_head", ...) to a module; only the backbone gets
    layer-wise decay (heads sit on top of the last block, multiplier 1). Parameters that share
    multipliers share a group, so AdamW's multi-tensor kernels stay vectorised."""
    groups: dict[tuple, dict] = {}
    for prefix, module in modules.items():
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            lr_mult = 1.0
            if prefix == "backbone":
                lr_mult = layerwise_decay ** (n_blocks + 1 - layer_id(name, n_blocks))
                if name.startswith("patch_embed"):
                    lr_mult *= patch_embed_lr_mult
            wd_mult = 0.0 if _no_decay(name, param) else 1.0
            last = "last_layer" in name
            group = groups.setdefault((lr_mult, wd_mult, last), {
                "params": [], "names": [], "lr_multiplier": lr_mult, "wd_multiplier": wd_mult, "is_last_layer": last})
            group["params"].append(param)
            group["names"].append(f"{prefix}.{name}")
    return list(groups.values())


def build_optimizer(groups: list[dict], betas, fused: bool = False) -> torch.optim.AdamW:
    """AdamW; ``fused`` runs one kernel over all parameters (CPU and CUDA). PyTorch's CPU
    default is a Python loop over parameters, which costs more than the update itself on a
    small ViT; FSDP2's sharded parameters keep the default."""
    return torch.optim.AdamW(groups, lr=0.0, betas=tuple(betas), weight_decay=0.0, fused=fused or None)


def apply_schedules(optimizer: torch.optim.Optimizer, values: dict) -> None:
    for group in optimizer.param_groups:
        group["lr"] = values["lr"] * group["lr_multiplier"]
        group["weight_decay"] = values["wd"] * group["wd_multiplier"]
