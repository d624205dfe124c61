"""``method: mammodino | dinov2 | mae | simmim``: which objective the one engine trains.

* ``mammodino``: DINOv2's objective (DINO + iBOT + KoLeo) with the tissue-aware sampler and
  the DBT adjacent-slice loss (``train.ssl_model.SSLModel``).
* ``dinov2``: the same model as plain DINOv2 users run it; ``configs/methods/dinov2.yaml`` sets
  random crops and masks on the whole image and no slice loss.
* ``mae`` / ``simmim``: the masked-image-modelling baselines (``train.mim_model.MIMModel``),
  each with its own recipe in ``configs/methods/<method>.yaml``.

Everything else (ViT, data, step, checkpoints, resume, export, probes) is shared.
"""

from __future__ import annotations

from torch import nn

METHODS = ("mammodino", "dinov2", "mae", "simmim")
MIM_METHODS = ("mae", "simmim")


def method_of(cfg) -> str:
    return str(cfg.get("method", "mammodino"))


def is_mim(cfg) -> bool:
    """True for the reconstruction baselines (no teacher, no DINO head)."""
    return method_of(cfg) in MIM_METHODS


def build_model(cfg) -> nn.Module:
    """The model of ``cfg.method``, ready for ``train.step.build_train_step``."""
    method = method_of(cfg)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if is_mim(cfg):
        from mammodino.train.mim_model import MIMModel

        return MIMModel(cfg)
    from mammodino.train.ssl_model import SSLModel

    return SSLModel(cfg)
