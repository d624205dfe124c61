"""What changed between the config a run was started with and the one it resumes with.

A resumed run that silently trains with another batch size, data folder or seed is no longer
the experiment its checkpoint says it is. Keys that change the experiment (the model, the
losses, crops, augmentation, data, optimiser, seed and batch) refuse the resume unless
``--allow-config-change`` is given; housekeeping keys (how long, how often to log, save or
validate, how many loader workers, precision, sharding, memory-for-speed trades, what is
reported after training) are only logged. A key not listed as housekeeping counts as
experiment: new options are safe by default. The split, key by key (pretrain and finetune
share the names):

- housekeeping: ``train.steps`` (the schedules follow the new length from the resumed step),
  ``train.checkpoint_every / keep_every / log_every / max_nonfinite_steps / precision /
  deterministic / fsdp / compile / half_batches``, ``train.grad_accum`` (the global batch is
  ``train.batch_size`` whatever the split), ``train.eval_every / patience /
  eval_batch_size`` (when validation runs and early stopping looks: the weights' path is
  the same), ``data.num_workers``, ``model.grad_checkpointing`` (memory only),
  ``model.pretrained`` (read only when a run starts at step 0), ``monitor.*``,
  ``eval.n_boot / calibrate / calibration_min_images`` (reporting and calibration after
  training).
- experiment: everything else -- ``model.*`` (architecture, drop path, head), the
  ``dino / ibot / slice`` losses, ``crops.*``, ``augment.*``, ``data.*`` (the DBT share,
  slices, qc rows kept, resolution, balance), ``optim.*``, ``finetune.*``,
  ``train.batch_size / seed``, ``eval.val_size / test_size`` (who is trained on), and the
  run's inputs outside the config: ``--data`` folders, and for a fine-tune ``--task``,
  ``--labels``, ``--label-fraction`` and the generic-task columns.
"""

from __future__ import annotations

from pathlib import Path

from mammodino.errors import UserError

HOUSEKEEPING = (
    "train.steps", "train.checkpoint_every", "train.keep_every", "train.log_every",
    "train.max_nonfinite_steps", "train.precision", "train.deterministic", "train.fsdp",
    "train.compile", "train.half_batches", "train.grad_accum", "train.eval_every", "train.patience", "train.eval_batch_size",
    "data.num_workers", "model.grad_checkpointing", "model.pretrained", "monitor.",
    "eval.n_boot", "eval.calibrate", "eval.calibration_min_images",
)
PATH_INPUTS = ("--labels",)  # inputs that are paths: compared resolved
NOTES = {"train.steps": "the lr / weight-decay / momentum schedules follow the new length from here"}


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
                        checkpoint: Path, allow_change: bool, log=print, saved_inputs: dict | None = None,
                        inputs: dict | None = None) -> list[tuple]:
    """Refuse (UserError listing every key) or log the differences; returns all changes.

    ``saved_inputs`` / ``inputs``: the run's other inputs (command-line options outside the
    config, e.g. a fine-tune's ``--task``), compared as experiment keys; values that are
    paths (``--labels``) compare by resolved path. A checkpoint written before inputs were
    recorded (``saved_inputs`` None) is not compared."""
    experiment, housekeeping = config_changes(saved_cfg, cfg)
    if saved_data is not None and not _same_folders(saved_data, [str(d) for d in data_dirs]):
        experiment.append(("--data", list(saved_data), [str(d) for d in data_dirs]))
    if saved_inputs is not None:
        for key in sorted(set(saved_inputs) | set(inputs or {})):
            old, new = saved_inputs.get(key), (inputs or {}).get(key)
            if key in PATH_INPUTS and old and new and _same_folders([old], [new]):
                continue
            if old != new:
                experiment.append((key, old, new))
    lines = [f"  {k}: {old!r} -> {new!r}" for k, old, new in experiment]
    if experiment and not allow_change:
        raise UserError(
            f"--resume: the config differs from the one {checkpoint.name} was trained with, in keys that change "
            "the experiment:\n" + "\n".join(lines) +
            "\nresume with the same config, use another --out for a new run, or pass --allow-config-change")
    if experiment:
        log("--allow-config-change: resuming with a changed experiment config:\n" + "\n".join(lines))
    if housekeeping:
        log("resuming with changed settings:\n" + "\n".join(
            f"  {k}: {o!r} -> {n!r}" + (f" ({NOTES[k]})" if k in NOTES else "") for k, o, n in housekeeping))
    return experiment + housekeeping
