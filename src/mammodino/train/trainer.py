"""The pretraining loop: the same code on CPU, one GPU, or many processes under torchrun.

The step itself (micro-batches, finite vote, rollback, last-layer freeze, clip, AdamW, EMA)
is ``mammodino.train.step.TrainStep``; this module owns what surrounds it: the run folder,
resume, the data stream, logging, the collapse warning and checkpoints. The random state
of a step is derived from (seed, step, rank) and the data of a step from (seed, step), so a
resumed run repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from mammodino.config import save_config
from mammodino.data.batch_plan import BatchPlan
from mammodino.data.dataset import PretrainDataset, collate
from mammodino.errors import UserError
from mammodino.models.dinov2_import import load_dinov2_weights
from mammodino.train import checkpoint as ckpt
from mammodino.train import distributed as dist
from mammodino.train.loader import build_loader
from mammodino.train.metrics_log import MetricsLog
from mammodino.train.run_folder import RunFolder
from mammodino.train.methods import build_model
from mammodino.train.step import StepResult, build_train_step


class NonFiniteLossError(UserError):
    """Too many consecutive non-finite steps: the run saved its last good state and stopped."""


class Trainer:
    def __init__(self, cfg, data_dirs: list, run_dir: str | Path, resume: bool = False,
                 progress: bool = True, stop_at: int | None = None, echo_config: bool = True,
                 allow_config_change: bool = False):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.stop_at = stop_at  # tests: stop after this many steps, as if killed after a save
        self.echo_config = echo_config
        self.data_dirs = [Path(d) for d in data_dirs]
        self.device = dist.setup()
        self.rank, self.world = dist.rank(), dist.world_size()
        self.folder = RunFolder(self.run_dir, resume, allow_config_change, main=dist.is_main())

    # ----------------------------------------------------------------- set-up
    def _prepare_run_dir(self) -> None:
        """Lock the run folder; refuse to reuse one that holds a run unless resuming."""
        self.folder.open()
        dist.barrier()

    def _build(self):
        cfg = self.cfg
        for d in self.data_dirs:
            if not d.exists():
                raise UserError(f"--data {d}: no such folder")
        self.dataset = PretrainDataset([str(d) for d in self.data_dirs], cfg)
        self.plan = BatchPlan(self.dataset, cfg)
        self.collate = collate
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg)  # cfg.method: DINO-family SSLModel or the MAE/SimMIM model
        if cfg.model.pretrained:
            report = load_dinov2_weights(self.model.student.backbone, cfg.model.pretrained)
            self.model.sync_teacher_from_student()
            if dist.is_main():
                print(f"initialised from {cfg.model.pretrained}: {report}", flush=True)
        self.model.to(self.device)

    # ------------------------------------------------------------ checkpoints
    def _state_tensors(self) -> tuple[dict, dict]:
        """Full (unsharded) tensors on every rank; collectives under FSDP, so all ranks call it."""
        tensors = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in self.model.state_dict().items()}
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            opt_state = get_optimizer_state_dict(self.model.student, self.optimizer,
                                                 options=StateDictOptions(full_state_dict=True))
        else:
            opt_state = self.optimizer.state_dict()
        opt_tensors, opt_meta = ckpt.flatten_optimizer(opt_state)
        rng_tensors, rng_meta = ckpt.rng_state()
        tensors.update({k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in opt_tensors.items()})
        tensors.update(rng_tensors)
        return tensors, {"optimizer": opt_meta, "rng": rng_meta}

    def save(self, step: int) -> Path | None:
        """Write checkpoint-last (and a periodic copy when asked); rank 0 writes, all wait."""
        tensors, extra = self._state_tensors()
        path = None
        if dist.is_main():
            meta = {
                "state": {"step": step, "world_size": self.world, "monitor_warned": getattr(self.monitor, "warned", 0),
                          "data_dirs": [str(d) for d in self.data_dirs]},
                "config": OmegaConf.to_container(self.cfg, resolve=True),
                "optimizer": extra["optimizer"],
                "rng": extra["rng"],
                "format": "mammodino-checkpoint-1",
            }
            path = ckpt.save_checkpoint(self.run_dir / ckpt.LAST, tensors, meta)
            keep = int(self.cfg.train.keep_every)
            if keep and step % keep == 0:
                ckpt.save_checkpoint(self.run_dir / ckpt.periodic_name(step), tensors, meta)
        dist.barrier()
        return path

    def load_model(self, path: Path, tensors: dict, meta: dict) -> tuple[dict, dict]:
        """Weights and loss buffers, into the plain (not yet wrapped) model."""
        model_keys = set(self.model.state_dict().keys())
        model_state = {k: v for k, v in tensors.items() if k in model_keys}
        missing = model_keys - set(model_state)
        if missing:
            raise UserError(f"checkpoint {path} does not match this config: missing {sorted(missing)[:5]} ...")
        try:
            self.model.load_state_dict(model_state)
        except RuntimeError as exc:
            raise UserError(f"checkpoint {path} does not match this config: "
                            f"{str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc}") from None
        return tensors, meta

    def load_optimizer(self, tensors: dict, meta: dict, path: Path) -> int:
        opt_state = ckpt.unflatten_optimizer(tensors, meta["optimizer"])
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(self.model.student, self.optimizer, opt_state,
                                     options=StateDictOptions(full_state_dict=True))
        else:
            self.optimizer.load_state_dict(opt_state)
        ckpt.restore_rng(tensors, meta.get("rng", {}))
        step = int(meta["state"]["step"])
        if dist.is_main():
            prev = meta["state"].get("world_size", 1)
            note = f" (saved with {prev} processes, now {self.world})" if prev != self.world else ""
            print(f"resuming from {path.name} at step {step}{note}", flush=True)
        return step

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        self._prepare_run_dir()
        self._build()
        start = self._restore_or_start()
        if dist.is_main():
            self.folder.keep_previous_config(start)
            save_config(self.cfg, self.run_dir / "config.yaml")
            if start == 0:
                self._write_preview()
            self._print_start(start)
        log = MetricsLog(self.run_dir, start_step=start, enabled=dist.is_main())
        try:
            last = self._loop(start, log)
        finally:
            log.close()
        if dist.is_main():
            from mammodino.train.plots import plot_loss_curves

            plot_loss_curves(self.run_dir / "metrics.jsonl", self.run_dir / "loss_curve.png")
        return last

    def _restore_or_start(self) -> int:
        """Load a checkpoint into the plain model, wrap, build the step, then its optimizer state."""
        resume_from = None
        if self.resume:
            point = self.folder.resume_point()  # newest checkpoint that verifies
            if point is not None:
                self.folder.check_config(OmegaConf.to_container(self.cfg, resolve=True), self.data_dirs, point)
                resume_from = (point.path, *self.load_model(point.path, point.tensors, point.meta))
                dist.barrier()
                self.folder.set_aside_damaged(point)
                del point
            elif dist.is_main():
                print(f"--resume: no checkpoint in {self.run_dir}, starting from step 0", flush=True)
        self.train_step = build_train_step(self.cfg, self.model, self.device)
        if resume_from is None:
            return 0
        found, tensors, meta = resume_from
        return self.load_optimizer(tensors, meta, found)

    @property
    def optimizer(self):
        return self.train_step.optimizer

    @property
    def fsdp(self) -> bool:
        return self.train_step.fsdp

    @property
    def monitor(self):
        return self.train_step.monitor

    def _loop(self, start: int, log: MetricsLog) -> dict:
        cfg = self.cfg
        total = int(cfg.train.steps)
        end = total if self.stop_at is None else min(total, int(self.stop_at))
        loader = build_loader(self.dataset, self.plan, cfg, start, self.rank, self.world, self.collate)
        batches = iter(loader)
        bar = tqdm(total=total, initial=start, desc="pretrain", unit="step", dynamic_ncols=True,
                   disable=not (self.progress and dist.is_main()), file=sys.stderr)
        self._nonfinite_run, last = 0, {}
        self._t_last, self._imgs_since = time.perf_counter(), 0
        try:
            for step in range(start, end):
                micro = itertools.islice(batches, self.train_step.grad_accum)
                result = self.train_step(step, micro)
                self._imgs_since += result.images
                bar.update(1)
                if not result.applied:
                    self._on_nonfinite(result, log)
                    continue
                self._nonfinite_run = 0
                done = step + 1
                if done % cfg.train.log_every == 0 or done == end:
                    last = self._log(done, result, log, bar)
                if done % cfg.train.checkpoint_every == 0 or done == end:
                    self.save(done)
        finally:
            bar.close()
            del batches
        return last

    def _on_nonfinite(self, result: StepResult, log: MetricsLog) -> None:
        cfg, step = self.cfg, result.step
        self._nonfinite_run += 1
        log.write({"step": step, "skipped": "non-finite loss or gradient", **result.losses})
        print(f"\nstep {step}: non-finite loss or gradient; step skipped "
              f"({self._nonfinite_run} in a row, limit {cfg.train.max_nonfinite_steps})", file=sys.stderr, flush=True)
        if self._nonfinite_run >= cfg.train.max_nonfinite_steps:
            self.save(step)
            raise NonFiniteLossError(
                f"{self._nonfinite_run} consecutive steps had non-finite losses (last at step {step}); "
                f"saved the last good state to {self.run_dir / ckpt.LAST} and stopped. "
                "Lower optim.base_lr or check the input data.")

    def _log(self, done: int, result: StepResult, log: MetricsLog, bar) -> dict:
        sums = self._mean_over_ranks(result.losses)
        now = time.perf_counter()
        ips = self._imgs_since * self.world / max(now - self._t_last, 1e-9)
        self._t_last, self._imgs_since = now, 0
        values, stats = result.values, result.stats or {}
        last = {"step": done, **{k: round(v, 6) for k, v in sums.items()},
                "lr": values["lr"], "wd": values["wd"], "momentum": values["mom"],
                "teacher_temp": values["teacher_temp"], "grad_norm": result.grad_norm,
                "images_per_s": round(ips, 3),
                **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in stats.items()}}
        log.write(last)
        bar.set_postfix(loss=f"{sums['loss']:.3f}", img_s=f"{ips:.1f}")
        if stats.get("collapsed") and dist.is_main() and self.monitor.warned < 5:
            self.monitor.warn(done, stats)
        return last

    def _mean_over_ranks(self, values: dict) -> dict:
        if not dist.is_enabled():
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce_mean(t)
        return dict(zip(keys, t.tolist()))

    def _write_preview(self) -> None:
        try:
            from mammodino.data.preview import save_preview

            save_preview(self.dataset, self.run_dir / "crop_preview.png", n=6)
        except Exception as exc:  # a preview must never stop a run
            print(f"(crop preview not written: {exc})", file=sys.stderr)

    def _print_start(self, start: int) -> None:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.student.backbone.parameters())
        n_dbt = sum(1 for i in range(len(self.dataset)) if self.dataset.is_dbt(i)) if hasattr(self.dataset, "is_dbt") else "?"
        print(f"mammodino pretrain: {cfg.model.arch} ViT ({n_params / 1e6:.1f} M params), "
              f"{len(self.dataset)} images/volumes ({n_dbt} DBT) from {', '.join(map(str, self.data_dirs))}, "
              f"{self.world} process(es) on {self.device}, batch {cfg.train.batch_size}, steps {start}->{cfg.train.steps}, "
              f"run folder {self.run_dir}", flush=True)
        for folder, n in getattr(self.dataset, "qc_left_out", {}).items():
            print(f"left out {n} qc=suspect row(s) of {folder} (look at them with `mammodino qc {folder} --out DIR`; "
                  "data.keep_qc_suspect=true keeps them)", flush=True)
        for folder, n in getattr(self.dataset, "qc_unchecked", {}).items():
            print(f"{folder}: {n} row(s) have no qc column (indexed before quality control): kept; "
                  f"`mammodino qc {folder} --out DIR` checks them", flush=True)
        if self.echo_config:
            print("config:\n" + OmegaConf.to_yaml(cfg), flush=True)


def pretrain(cfg, data_dirs, run_dir, resume=False, progress=True, stop_at=None,
             echo_config=True, allow_config_change=False) -> dict:
    """Python entry point of ``mammodino pretrain``; returns the last logged metrics."""
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    trainer = Trainer(cfg, data_dirs, run_dir, resume=resume, progress=progress, stop_at=stop_at,
                      echo_config=echo_config, allow_config_change=allow_config_change)
    try:
        return trainer.run()
    finally:
        trainer.folder.close()
        if dist.is_enabled():
            dist.teardown()
