"""Configs: one YAML of defaults, thin preset files, ``key=value`` overrides.

An unknown key, a value of the wrong type or an invalid choice fails fast with a message
that names the key (DINOv2 silently ignores typos; a week-long run should not).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mammodino import atomic
from mammodino.errors import ConfigError

CHOICES = {
    "method": {"mammodino", "dinov2", "mae", "simmim"},
    "model.arch": {"tiny", "small", "base", "large"},
    "dino.centering": {"sinkhorn_knopp", "centering"},
    "crops.sampler": {"tissue", "random"},
    "train.precision": {"auto", "bf16", "fp32"},
    "train.fsdp": {"auto", True, False},
    "train.half_batches": {"auto", True, False},
}


def preset_dir() -> Path:
    return Path(str(resources.files("mammodino") / "configs"))


def list_presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml") if p.stem != "default")


def _read_yaml(path: Path, what: str) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # OSError, YAML syntax errors, OmegaConf errors
        raise ConfigError(f"{what} {path}: cannot be read as YAML ({exc})") from exc
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{what} {path}: expected a mapping of keys, got {type(cfg).__name__}")
    return cfg


def resolve_preset(name_or_path: str | None) -> Path | None:
    if not name_or_path:
        return None
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = preset_dir() / f"{Path(name_or_path).stem}.yaml"
    if candidate.exists():
        return candidate
    raise ConfigError(
        f"config {name_or_path!r}: no such file and no such preset (presets: {', '.join(list_presets())})"
    )


def _check_against(defaults, cfg, prefix: str = "") -> None:
    """Every key of ``cfg`` must exist in ``defaults`` with a compatible type."""
    for key in cfg.keys():
        full = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(str(k) for k in defaults.keys())
            raise ConfigError(f"unknown config key {full!r} (known keys here: {known})")
        dval = OmegaConf.to_container(defaults, resolve=False)[key] if isinstance(defaults, DictConfig) else None
        node = cfg._get_node(key)
        if isinstance(node, ListConfig):
            cval = OmegaConf.to_container(node)
        else:
            cval = node._value() if hasattr(node, "_value") else cfg[key]
        if isinstance(defaults[key], DictConfig):
            if not isinstance(cfg[key], DictConfig):
                raise ConfigError(f"config key {full!r} is a section; got the value {cval!r}")
            _check_against(defaults[key], cfg[key], full + ".")
            continue
        _check_value(full, dval, cval)


def _check_value(key: str, default, value) -> None:
    if value is None or value == "???" or default is None:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        if key in CHOICES:
            return
        if not (isinstance(default, bool) and isinstance(value, bool)):
            raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
        return
    if isinstance(default, (int, float)):
        if not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"config key {key!r}: expected a whole number, got {value!r}")
        return
    if isinstance(default, (list, ListConfig)):
        if not isinstance(value, (list, ListConfig)) or len(value) != len(default):
            raise ConfigError(f"config key {key!r}: expected a list of {len(default)} values, got {value!r}")
        for item in value:
            if not isinstance(item, (int, float)) or isinstance(item, bool):
                raise ConfigError(f"config key {key!r}: expected numbers, got {value!r}")
        return
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"config key {key!r}: expected text, got {value!r}")


def check_choices(cfg: DictConfig, choices: dict = CHOICES) -> None:
    """Every key of ``choices`` holds one of its allowed values."""
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            shown = ", ".join(sorted(str(a) for a in allowed))
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {shown}")


def parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.steps=100")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"overrides {overrides}: {exc}") from exc


def merge_layers(defaults_file: Path, preset_file: Path | None, overrides=(), between=()) -> DictConfig:
    """defaults <- preset file <- ``between`` files <- key=value overrides, each layer checked
    against the defaults (unknown key, wrong type) and every ``???`` a preset leaves set by a
    later layer. Shared by the pretraining and the fine-tuning configs."""
    defaults = _read_yaml(defaults_file, "defaults")
    layers = []
    if preset_file is not None:
        layers.append(_read_yaml(preset_file, "config"))
    layers += [_read_yaml(Path(f), "method config") for f in between]
    if overrides:
        layers.append(parse_overrides(list(overrides)))
    for layer in layers:
        _check_against(defaults, layer)
    cfg = OmegaConf.merge(defaults, *layers)
    _check_required(layers)
    return cfg


def method_layer(method: str) -> Path | None:
    """The thin file a ``method`` applies after the preset (``configs/methods/<method>.yaml``);
    None for ``mammodino`` (the defaults are MammoDINO's)."""
    path = preset_dir() / "methods" / f"{method}.yaml"
    return path if path.exists() else None


def load_config(preset: str | None = None, overrides: list[str] | tuple = ()) -> DictConfig:
    """defaults <- preset file <- the method's file <- key=value overrides, validated.

    ``method`` (set in the preset or an override) picks the objective; its file sets what that
    method implies (``dinov2``: random crops and masks, no slice loss; ``mae`` / ``simmim``:
    their own crops, augmentation and optimiser), and explicit overrides still win over it.
    """
    preset_file = resolve_preset(preset)
    cfg = merge_layers(preset_dir() / "default.yaml", preset_file, overrides)
    check_choices(cfg, {"method": CHOICES["method"]})
    layer = method_layer(cfg.method)
    if layer is not None:
        cfg = merge_layers(preset_dir() / "default.yaml", preset_file, overrides, between=[layer])
    check_choices(cfg)
    _check_ranges(cfg)
    return cfg


def _check_required(layers: list) -> None:
    """A preset marks required keys with ???; a later layer must set them."""
    missing = set()
    for layer in layers:
        missing -= {k for k in missing if OmegaConf.select(layer, k, default=None) is not None}
        missing |= set(OmegaConf.missing_keys(layer))
    missing = sorted(missing)
    if missing:
        raise ConfigError(f"config keys {', '.join(missing)} must be set (e.g. {missing[0]}=...)")


def _check_ranges(cfg: DictConfig) -> None:
    def positive(key):
        if not OmegaConf.select(cfg, key) > 0:
            raise ConfigError(f"config key {key!r}: must be > 0, got {OmegaConf.select(cfg, key)!r}")

    for key in ("train.steps", "train.batch_size", "train.grad_accum", "crops.global_crop_size",
                "crops.local_crop_size", "dino.n_prototypes", "model.patch_size", "optim.base_lr"):
        positive(key)
    for key in ("train.checkpoint_every", "train.log_every", "dino.hidden_dim", "dino.bottleneck_dim",
                "slice.proj_dim", "slice.hidden_dim", "dino.student_temp", "slice.temperature",
                "optim.teacher_temp", "optim.warmup_teacher_temp", "train.max_nonfinite_steps"):
        positive(key)
    for key in ("data.num_workers", "train.seed", "model.num_register_tokens", "train.keep_every",
                "crops.local_crops_number", "dino.nlayers"):
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"config key {key!r}: must be >= 0, got {OmegaConf.select(cfg, key)!r}")
    for key in ("optim.warmup_fraction", "ibot.mask_sample_probability", "optim.teacher_temp_warmup_fraction",
                "optim.freeze_last_layer_fraction", "model.drop_path_rate"):
        value = OmegaConf.select(cfg, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"config key {key!r}: must be within [0, 1], got {value!r}")
    if cfg.model.pretrained is not None and not isinstance(cfg.model.pretrained, str):
        raise ConfigError(f"config key 'model.pretrained': expected a file path, got {cfg.model.pretrained!r}")
    frac = cfg.data.dbt_fraction
    if not 0.0 <= frac <= 1.0:
        raise ConfigError(f"config key 'data.dbt_fraction': must be within [0, 1], got {frac!r}")
    for key in ("crops.global_crops_scale", "crops.local_crops_scale", "ibot.mask_ratio_min_max"):
        lo, hi = OmegaConf.select(cfg, key)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"config key {key!r}: expected 0 <= low <= high <= 1, got {[lo, hi]}")
    _check_mim(cfg)
    if cfg.train.batch_size % cfg.train.grad_accum:
        raise ConfigError("config keys 'train.batch_size' / 'train.grad_accum': batch size must divide evenly")
    if cfg.crops.global_crop_size % cfg.model.patch_size or cfg.crops.local_crop_size % cfg.model.patch_size:
        raise ConfigError(
            f"config keys 'crops.*_crop_size' ({cfg.crops.global_crop_size}, {cfg.crops.local_crop_size}) "
            f"must be multiples of 'model.patch_size' ({cfg.model.patch_size})"
        )


def _check_mim(cfg: DictConfig) -> None:
    for key in ("mae.mask_ratio", "simmim.mask_ratio"):
        value = OmegaConf.select(cfg, key)
        if not 0.0 < value < 1.0:
            raise ConfigError(f"config key {key!r}: must be within (0, 1), got {value!r}")
    for key in ("mae.decoder_dim", "mae.decoder_depth", "mae.decoder_heads", "simmim.mask_block_px"):
        if not OmegaConf.select(cfg, key) > 0:
            raise ConfigError(f"config key {key!r}: must be > 0, got {OmegaConf.select(cfg, key)!r}")
    if cfg.mae.decoder_dim % cfg.mae.decoder_heads:
        raise ConfigError(f"config keys 'mae.decoder_dim' ({cfg.mae.decoder_dim}) / 'mae.decoder_heads' "
                          f"({cfg.mae.decoder_heads}): the width must divide evenly into the heads")


def save_config(cfg: DictConfig, path: str | Path) -> None:
    atomic.write_text(path, OmegaConf.to_yaml(cfg, resolve=True), suffix=".tmp")
