"""What changed between the config a run was started with and the one it resumes with.

A resumed run that silently trains with another batch size, data folder or seed is no longer
the experiment its checkpoint says it is. Keys that change the experiment (the model, the
losses, crops, augmentation, data, optimiser, seed and batch) refuse the resume unless
``--allow-config-change`` is given; housekeeping keys (how long, how often to log or save,
how many loader workers, precision and sharding) are only logged. A key not listed as
housekeeping counts as experiment: new options are safe by default.
"""

from __future__ import annotations

from pathlib import Path

from mammodino.errors import UserError

HOUSEKEEPING = (
    "train.steps", "train.checkpoint_every", "train.keep_every", "train.log_every",
    "train.max_nonfinite_steps", "train.precision", "train.deterministic", "train.fsdp",
    "train.compile", "data.num_workers", "monitor.",
)


def flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in (cfg or {}).items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def is_housekeeping(key: str) -> bool:
    return any(key == h or (h.endswith(".") and key.startswith(h)) for h in HOUSEKEEPING)


def config_changes(saved: dict, current: dict) -> tuple[list[tuple], list[tuple]]:
    """``(experiment, housekeeping)`` lists of ``(key, saved value, current value)``."""
    a, b = flatten(saved), flatten(current)
    experiment, housekeeping = [], []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key, "(absent)"), b.get(key, "(absent)")
        if old == new:
            continue
        (housekeeping if is_housekeeping(key) else experiment).append((key, old, new))
    return experiment, housekeeping


def _same_folders(saved: list, current: list) -> bool:
    def norm(items):
        return [str(Path(p).expanduser().resolve()) for p in items]
    return norm(saved) == norm(current)


def check_resume_config(saved_cfg: dict, saved_data: list | None, cfg: dict, data_dirs: list,
                        checkpoint: Path, allow_change: bool, log=print) -> list[tuple]:
    """Refuse (UserError listing every key) or log the differences; returns all changes."""
    experiment, housekeeping = config_changes(saved_cfg, cfg)
    if saved_data is not None and not _same_folders(saved_data, [str(d) for d in data_dirs]):
        experiment.append(("--data", list(saved_data), [str(d) for d in data_dirs]))
    lines = [f"  {k}: {old!r} -> {new!r}" for k, old, new in experiment]
    if experiment and not allow_change:
        raise UserError(
            f"--resume: the config differs from the one {checkpoint.name} was trained with, in keys that change "
            "the experiment:\n" + "\n".join(lines) +
            "\nresume with the same config, use another --out for a new run, or pass --allow-config-change")
    if experiment:
        log("--allow-config-change: resuming with a changed experiment config:\n" + "\n".join(lines))
    if housekeeping:
        log("resuming with changed settings:\n" + "\n".join(f"  {k}: {o!r} -> {n!r}" for k, o, n in housekeeping))
    return experiment + housekeeping
