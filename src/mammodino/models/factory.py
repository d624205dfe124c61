"""Build a backbone from the ``model`` section of a config (OmegaConf or plain dict)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mammodino.models.vit import VisionTransformer, build_vit

log = logging.getLogger(__name__)


def _get(section, key, default=None):
    if isinstance(section, Mapping) or hasattr(section, "get"):
        value = section.get(key, default)
        return default if value is None else value
    return getattr(section, key, default)


def build_backbone_from_config(cfg, img_size: int | None = None, drop_path_rate: float | None = None,
                               load_pretrained: bool = False) -> VisionTransformer:
    """A ViT from ``cfg`` -- the whole config or just its ``model`` section.

    With the whole config, the stored position-embedding grid follows
    ``crops.global_crop_size`` (as DINOv2 does); otherwise ``img_size`` or 224.
    ``load_pretrained=True`` also imports ``model.pretrained`` (a local DINOv2 / timm / HF
    file) and logs the import report.
    """
    model = _get(cfg, "model")
    if model is not None and _get(model, "arch") is not None:
        crops = _get(cfg, "crops")
        if img_size is None and crops is not None:
            img_size = _get(crops, "global_crop_size")
    else:
        model = cfg
    if _get(model, "arch") is None:
        from mammodino.errors import ConfigError

        raise ConfigError("config key 'model.arch' is missing")
    vit = build_vit(
        _get(model, "arch"),
        patch_size=int(_get(model, "patch_size", 14)),
        num_register_tokens=int(_get(model, "num_register_tokens", 4)),
        drop_path_rate=float(_get(model, "drop_path_rate", 0.0) if drop_path_rate is None else drop_path_rate),
        layerscale_init=float(_get(model, "layerscale_init", 1e-5)),
        img_size=int(img_size or 224),
    )
    pretrained = _get(model, "pretrained")
    if load_pretrained and pretrained:
        from mammodino.models.dinov2_import import load_dinov2_weights

        report = load_dinov2_weights(vit, pretrained)
        log.info("initialised from %s: %s", pretrained, report)
    return vit
