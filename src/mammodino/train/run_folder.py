"""The run folder of ``pretrain``: who may write it, and what a resume starts from.

- One writer: the main process holds :class:`mammodino.locks.FolderLock` for the whole run.
- No reuse by accident: a folder that already holds a run (a checkpoint, even a damaged
  one, metrics or a config) is only written by ``--resume``.
- Resume from the newest checkpoint that verifies (checksum, finite weights). A damaged
  newer file is reported, renamed to ``<name>.damaged`` so the next save cannot overwrite
  its bytes, and the previous good checkpoint is used. When every checkpoint is damaged the
  run stops with the list instead of starting again from step 0 over the old run.
- The config is compared with the checkpoint's (:mod:`mammodino.train.config_diff`); the
  previous ``config.yaml`` is kept as ``config-before-step-<N>.yaml`` when it changes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mammodino.errors import UserError
from mammodino.locks import FolderLock
from mammodino.train import checkpoint as ckpt
from mammodino.train.config_diff import check_resume_config

RUN_FILES = ("metrics.jsonl", "config.yaml")


@dataclass
class ResumePoint:
    path: Path
    tensors: dict
    meta: dict
    damaged: list = field(default_factory=list)

    @property
    def step(self) -> int:
        return int(self.meta["state"]["step"])


class RunFolder:
    def __init__(self, run_dir: str | Path, resume: bool, allow_config_change: bool = False, main: bool = True,
                 command: str = "mammodino pretrain"):
        self.path = Path(run_dir)
        self.command = command
        self.resume = resume
        self.allow_config_change = allow_config_change
        self.main = main
        self.lock: FolderLock | None = None
        self.changes: list = []

    def open(self) -> None:
        """Main process: check, create and lock the folder; remove partial writes."""
        if not self.main:
            return
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path}: exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out {self.path}: cannot create the run folder ({exc.strerror or exc})") from None
        self.lock = FolderLock(self.path, "run folder", command=self.command).acquire()
        if self.lock.took_over:
            print(f"{self.path}: took over the lock of a process that is gone ({self.lock.took_over})", flush=True)
        if not self.resume:
            held = [p.name for p in ckpt.checkpoint_candidates(self.path)]
            held += [n for n in RUN_FILES if (self.path / n).exists() and (self.path / n).stat().st_size]
            if held:
                self.close()
                raise UserError(f"{self.path} already holds a run ({', '.join(held[:4])}); pass --resume to continue "
                                "it or choose another --out (nothing is overwritten)")
        ckpt.clean_partials(self.path)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def resume_point(self) -> ResumePoint | None:
        """Every process: the checkpoint to resume from, or None for a fresh start."""
        path, tensors, meta, damaged = ckpt.select_checkpoint(self.path)
        if path is None and damaged:
            lines = "\n".join(f"  {reason}" for _, reason in damaged)
            raise UserError(f"--resume: no usable checkpoint in {self.path}:\n{lines}\n"
                            "nothing was changed; move the damaged files away to start this run again from step 0")
        if path is None:
            return None
        if self.main:
            for bad, reason in damaged:
                print(f"{reason}\n  -> resuming from {path.name} (step {meta['state']['step']}) instead", flush=True)
        return ResumePoint(path, tensors, meta, damaged)

    def set_aside_damaged(self, point: ResumePoint | None) -> None:
        """Main process, after every process has loaded: damaged files get a name that no
        save writes to and no resume reads."""
        if not self.main or point is None:
            return
        for bad, _ in point.damaged:
            target = bad.with_name(bad.name + ".damaged")
            n = 1
            while target.exists():
                n += 1
                target = bad.with_name(f"{bad.name}.damaged-{n}")
            bad.rename(target)
            print(f"  kept the damaged file as {target.name}", flush=True)

    def check_config(self, cfg: dict, data_dirs: list, point: ResumePoint, log=print, inputs: dict | None = None) -> None:
        """Compare the config (and ``inputs``, the run's options outside it, saved in the
        checkpoint's state as ``inputs``) with the checkpoint's."""
        state = point.meta.get("state", {})
        saved = point.meta.get("config")
        if not isinstance(saved, dict):
            raise UserError(f"--resume: {point.path} holds no readable config; cannot check it matches this run")
        saved_inputs = state.get("inputs") if isinstance(state.get("inputs"), dict) else None
        self.changes = check_resume_config(saved, state.get("data_dirs"), cfg, data_dirs, point.path,
                                           self.allow_config_change, log=log if self.main else (lambda *_: None),
                                           saved_inputs=saved_inputs, inputs=inputs)

    def keep_previous_config(self, step: int) -> None:
        """Main process, before writing the new config.yaml of a changed resume."""
        current = self.path / "config.yaml"
        if self.main and self.changes and current.exists():
            shutil.copyfile(current, self.path / f"config-before-step-{step}.yaml")
