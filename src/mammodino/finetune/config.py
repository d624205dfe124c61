"""Fine-tuning configs: ``configs/finetune/default.yaml`` <- preset <- ``key=value``.

The same rules as the pretraining config (:mod:`mammodino.config`, whose checks this
reuses): an unknown key, a wrong type or an invalid choice fails at once naming the key.
The fine-tuning options live in their own file because they are a different set (a head, a
task, a schedule counted in labelled batches), not a variant of pretraining.

Example:
    >>> cfg = load_finetune_config("cpu-tiny", ["train.steps=50", "model.head=linear"])
    >>> cfg.train.steps, cfg.model.head
    (50, 'linear')
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mammodino.config import check_choices, merge_layers, preset_dir
from mammodino.errors import ConfigError

CHOICES = {
    "model.head": {"linear", "attention"},
    "finetune.mode": {"full", "partial", "frozen"},
    "data.balance": {"sampler", "loss", "none"},
    "train.precision": {"auto", "bf16", "fp32"},
}


def finetune_preset_dir() -> Path:
    return preset_dir() / "finetune"


def list_finetune_presets() -> list[str]:
    return sorted(p.stem for p in finetune_preset_dir().glob("*.yaml") if p.stem != "default")


def _resolve(name_or_path: str | None) -> Path | None:
    if not name_or_path:
        return None
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = finetune_preset_dir() / f"{path.stem}.yaml"
    if candidate.exists():
        return candidate
    raise ConfigError(f"fine-tune config {name_or_path!r}: no such file and no such preset "
                      f"(presets: {', '.join(list_finetune_presets())})")


def load_finetune_config(preset: str | None = None, overrides=()) -> DictConfig:
    """defaults <- preset file <- ``key=value`` overrides, validated (keys, types, choices, ranges)."""
    cfg = merge_layers(finetune_preset_dir() / "default.yaml", _resolve(preset), overrides)
    check_choices(cfg, CHOICES)
    _check_ranges(cfg)
    return cfg


def _check_ranges(cfg: DictConfig) -> None:
    def get(key):
        return OmegaConf.select(cfg, key)

    for key in ("train.steps", "train.batch_size", "train.eval_every", "train.checkpoint_every", "train.log_every",
                "train.eval_batch_size", "optim.lr", "data.resolution", "model.attention_hidden"):
        if not get(key) > 0:
            raise ConfigError(f"config key {key!r}: must be > 0, got {get(key)!r}")
    for key in ("train.patience", "train.seed", "data.num_workers", "finetune.unfreeze_blocks", "eval.n_boot",
                "eval.calibration_min_images",
                "optim.min_lr", "optim.weight_decay", "optim.clip_grad"):
        if get(key) < 0:
            raise ConfigError(f"config key {key!r}: must be >= 0, got {get(key)!r}")
    for key in ("finetune.warm_start_fraction", "optim.warmup_fraction", "model.dropout", "model.drop_path_rate",
                "optim.label_smoothing", "data.crop_min_tissue", "augment.jitter_prob", "augment.gamma_prob",
                "augment.blur_prob", "optim.layerwise_decay"):
        if not 0.0 <= get(key) <= 1.0:
            raise ConfigError(f"config key {key!r}: must be within [0, 1], got {get(key)!r}")
    for key in ("eval.val_size", "eval.test_size"):
        if not 0.0 < get(key) < 1.0:
            raise ConfigError(f"config key {key!r}: must be within (0, 1), got {get(key)!r}")
    lo, hi = get("data.crop_scale")
    if not 0.0 < lo <= hi <= 1.0:
        raise ConfigError(f"config key 'data.crop_scale': expected 0 < low <= high <= 1, got {[lo, hi]}")
    if get("data.resolution") < 32:
        raise ConfigError(f"config key 'data.resolution': {get('data.resolution')} is too small (try 256-1024)")
