"""``mammodino finetune``: encoder + head trained on a labelled task, resumable exactly.

A step: schedules -> reseed from (seed, step, rank) -> the step's batch (a pure function of
(seed, step)) -> forward (backbone frozen during the warm start) -> loss -> finite check
(all ranks agree) -> clip -> AdamW. Every ``train.eval_every`` steps the validation score
(AUC / macro AUC) decides the best weights (``best.safetensors``) and early stopping. A
checkpoint (``checkpoint-last.safetensors``, written by :mod:`mammodino.train.checkpoint`:
safetensors, temp file + fsync + rename) holds the weights, AdamW moments and the
early-stopping state, so a run killed at any moment and resumed with ``--resume`` ends with
the weights of an uninterrupted run (tested on CPU in deterministic mode).

At the end: the best weights, calibration (temperature + bias) on the validation split,
the test split scored as ``probe`` scores it, and the outputs ``DIR/model.safetensors`` +
``config.json``, ``results.json`` / ``results.md`` / ``summary.json``, ROC PNGs,
``metrics.jsonl``, ``config.yaml`` and ``training_curve.png``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mammodino import atomic
from mammodino.config import save_config
from mammodino.errors import UserError
from mammodino.eval.results import markdown_table, write_results
from mammodino.finetune import evaluate as ev
from mammodino.finetune.calibration import expected_calibration_error, fit_calibration
from mammodino.finetune.data import BatchPlan, FineTuneDataset, eval_loader
from mammodino.finetune.labels import load_labelled, make_splits
from mammodino.finetune.losses import classification_loss
from mammodino.finetune.model import build_model, save_finetuned
from mammodino.models.loading import load_backbone
from mammodino.models.preprocess import describe
from mammodino.train import checkpoint as ckpt
from mammodino.train import distributed as dist
from mammodino.train.loader import StepBatches, step_loader
from mammodino.train.metrics_log import MetricsLog
from mammodino.train.optim import apply_schedules, build_optimizer, param_groups
from mammodino.train.run_folder import RunFolder
from mammodino.train.schedules import cosine_schedule
from mammodino.train.step import autocast, step_seed

BEST = "best.safetensors"
CKPT_FORMAT = "mammodino-finetune-checkpoint-1"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _device(pref: str) -> torch.device:
    """This process's device: the process group's under torchrun (one GPU per rank), else
    ``--device`` as given (``auto``: CUDA when available)."""
    dev = dist.setup("auto" if pref == "auto" else ("cuda" if pref.startswith("cuda") else "cpu"))
    if pref not in ("auto", "cuda") and not dist.is_enabled():
        return torch.device(pref)
    return dev


class _LossMeter:
    """Mean loss and images/s since the last logged row (steps with a non-finite loss count
    their images but not their loss)."""

    def __init__(self):
        self.t_last, self.seen, self.loss_sum, self.n_loss = time.perf_counter(), 0, 0.0, 0

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += float(loss.detach())
        self.n_loss += 1

    def row(self, done: int, lr: float, backbone_grad: bool) -> dict:
        now = time.perf_counter()
        row = {"step": done, "loss": round(self.loss_sum / max(self.n_loss, 1), 6), "lr": lr,
               "backbone_trained": bool(backbone_grad), "images_per_s": round(self.seen / max(now - self.t_last, 1e-9), 3)}
        self.t_last, self.seen, self.loss_sum, self.n_loss = now, 0, 0.0, 0
        return row


class FineTuner:
    def __init__(self, encoder, cache, tasks: list[str], labels, out, cfg, *, random_init: bool = False,
                 arch: str | None = None, patch_size: int | None = None, which: str = "teacher",
                 label_fraction: float = 1.0, resume: bool = False, progress: bool = True,
                 stop_at: int | None = None, task_options: dict | None = None, device: str = "auto",
                 allow_config_change: bool = False, log=_stderr):
        self.encoder, self.cache, self.tasks, self.labels = encoder, Path(cache), list(tasks), labels
        self.out, self.cfg = Path(out), cfg
        self.random_init, self.arch, self.patch_size, self.which = random_init, arch, patch_size, which
        self.label_fraction = float(label_fraction)
        self.resume, self.progress, self.stop_at = resume, progress, stop_at
        self.task_options, self.log = task_options or {}, log
        self.device = _device(device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.folder = RunFolder(self.out, resume, allow_config_change, main=dist.is_main(), command="mammodino finetune")

    # ------------------------------------------------------------------ set-up
    def _prepare_out(self) -> None:
        """Lock the folder; refuse to reuse one that holds a fine-tune unless resuming (pretrain's rules)."""
        self.folder.open()
        dist.barrier()

    def _build(self) -> None:
        cfg = self.cfg
        log = self.log if dist.is_main() else (lambda *_: None)
        self.ls = load_labelled(self.cache, self.tasks, self.labels, self.task_options, log=log)
        self.splits = make_splits(self.ls, float(cfg.eval.test_size), float(cfg.eval.val_size), int(cfg.train.seed),
                                  self.label_fraction, log=log)
        backbone, self.encoder_info = load_backbone(
            None if self.random_init else self.encoder, which=self.which, random_init=self.random_init,
            arch=self.arch, patch_size=self.patch_size, seed=int(cfg.train.seed))
        torch.manual_seed(int(cfg.train.seed))  # the head's initial weights
        self.model = build_model(backbone, cfg, self.ls.n_outputs, self.ls.multilabel).to(self.device)
        patch = self.model.patch_size
        res = int(cfg.data.resolution)
        self.train_set = FineTuneDataset(self.ls, res, patch, cfg, train=True, seed=int(cfg.train.seed))
        self.eval_set = FineTuneDataset(self.ls, res, patch)
        self.plan = BatchPlan(self.splits.fit, self.ls.stratum()[self.splits.fit], int(cfg.train.batch_size),
                              int(cfg.train.seed), str(cfg.data.balance))
        weights = None
        if cfg.data.balance == "loss":
            weights = torch.as_tensor(self.ls.class_weights(self.splits.fit), dtype=torch.float32, device=self.device)
        self.class_weights = weights
        steps = int(cfg.train.steps)
        o = cfg.optim
        self.lr = cosine_schedule(float(o.lr), min(float(o.min_lr), float(o.lr)), steps,
                                  warmup=round(float(o.warmup_fraction) * steps))
        self.warm_steps = 0 if cfg.finetune.mode == "frozen" else round(float(cfg.finetune.warm_start_fraction) * steps)
        groups = param_groups({"backbone": self.model.backbone, "head": self.model.head}, len(self.model.backbone.blocks),
                              float(o.layerwise_decay), float(o.patch_embed_lr_mult))
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = build_optimizer(groups, o.betas)
        self.train_module = self.model
        if dist.is_enabled():
            from torch.nn.parallel import DistributedDataParallel as DDP

            kwargs = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self.train_module = DDP(self.model, broadcast_buffers=False, find_unused_parameters=True, **kwargs)

    # ------------------------------------------------------------- checkpoints
    def _save(self, step: int, state: dict) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = ckpt.flatten_optimizer(self.optimizer.state_dict())
        tensors.update(opt_tensors)
        if dist.is_main():
            meta = {"state": {"step": step, "world_size": self.world, "data_dirs": [str(self.cache)],
                              "inputs": self._inputs(), **state},
                    "config": OmegaConf.to_container(self.cfg, resolve=True), "optimizer": opt_meta,
                    "format": CKPT_FORMAT}
            ckpt.save_checkpoint(self.out / ckpt.LAST, tensors, meta)
        dist.barrier()

    def _inputs(self) -> dict:
        """The options outside the config that decide what is trained on (compared on resume)."""
        out = {"--task": ",".join(self.tasks), "--labels": str(self.labels) if self.labels else None,
               "--label-fraction": self.label_fraction}
        out.update({f"--{k.replace('_', '-')}": v for k, v in sorted(self.task_options.items()) if v is not None})
        return out

    def _load(self, point) -> tuple[int, dict]:
        """Weights, AdamW moments and the early-stopping state of a verified checkpoint."""
        if point.meta.get("format") != CKPT_FORMAT:
            raise UserError(f"{point.path}: not a fine-tune checkpoint (format {point.meta.get('format')!r})")
        self.folder.check_config(OmegaConf.to_container(self.cfg, resolve=True), [str(self.cache)], point,
                                 log=self.log, inputs=self._inputs())
        tensors, meta = point.tensors, point.meta
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_state)
        except RuntimeError as exc:
            raise UserError(f"{point.path} does not fit this model ({str(exc).splitlines()[-1].strip()})") from None
        self.optimizer.load_state_dict(ckpt.unflatten_optimizer(tensors, meta["optimizer"]))
        state = dict(meta["state"])
        for key in ("world_size", "data_dirs", "inputs"):
            state.pop(key, None)
        if dist.is_main():
            self.log(f"resuming from {point.path.name} at step {state['step']}")
        return int(state.pop("step")), state

    def _save_best(self, step: int, value: float) -> None:
        if dist.is_main():
            tensors = {k: v for k, v in self.model.state_dict().items()}
            ckpt.save_checkpoint(self.out / BEST, tensors, {"best": {"step": step, "score": value}})
        dist.barrier()

    # ------------------------------------------------------------------ loop
    def _validate(self) -> float:
        loader = eval_loader(self.eval_set, self.splits.val, int(self.cfg.train.eval_batch_size))
        logits = ev.batched_logits(self.model, loader, self.device, str(self.cfg.train.precision))
        probs = ev.probabilities_from_logits(self.model, logits)
        return ev.score(self.ls.y[self.splits.val], probs, self.ls.multilabel)

    def run(self) -> dict:
        cfg = self.cfg
        self._prepare_out()
        self._build()
        start, state = 0, {"best_score": None, "best_step": None, "bad_evals": 0, "stopped": False}
        if self.resume:
            point = self.folder.resume_point()  # newest checkpoint that verifies
            if point is not None:
                start, loaded = self._load(point)
                state.update(loaded)
                dist.barrier()
                self.folder.set_aside_damaged(point)
                del point
            elif dist.is_main():
                self.log(f"--resume: no checkpoint in {self.out}, starting from step 0")
        if dist.is_main():
            self.folder.keep_previous_config(start)
            save_config(cfg, self.out / "config.yaml")
            self._print_start(start)
        total = int(cfg.train.steps)
        end = total if self.stop_at is None else min(total, int(self.stop_at))
        log = MetricsLog(self.out, start_step=start, enabled=dist.is_main())
        has_val = self.splits.val is not None
        try:
            if not state["stopped"] and start < end:
                self._loop(start, end, state, log, has_val)
        finally:
            log.close()
        if self.stop_at is not None and not state["stopped"] and end < total:
            return {"stopped_at": end}
        return self._finish(state, has_val)

    def _loop(self, start: int, end: int, state: dict, log: MetricsLog, has_val: bool) -> None:
        cfg = self.cfg
        batches = StepBatches(self.plan.batch_keys, int(cfg.train.batch_size), start, int(cfg.train.steps),
                              self.rank, self.world, 1)
        loader = step_loader(self.train_set, batches, int(cfg.data.num_workers),
                             pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        from tqdm import tqdm

        bar = tqdm(total=int(cfg.train.steps), initial=start, desc="finetune", unit="step", dynamic_ncols=True,
                   disable=not (self.progress and dist.is_main()), file=sys.stderr)
        meter = _LossMeter()
        nonfinite = 0
        try:
            for step in range(start, end):
                lr, n_images, loss, backbone_grad, finite = self._forward_backward(step, batches)
                done = step + 1
                if not finite:
                    nonfinite += 1
                    log.write({"step": step, "skipped": "non-finite loss or gradient"})
                    if nonfinite >= 5:
                        self._save(step, state)
                        raise UserError(f"{nonfinite} consecutive fine-tune steps had non-finite losses (step {step}); "
                                        "saved checkpoint-last and stopped: lower optim.lr or check the data")
                else:
                    nonfinite = 0
                    self._apply_gradients()
                    meter.add(loss)
                meter.seen += n_images * self.world
                bar.update(1)
                row = {}
                if done % int(cfg.train.log_every) == 0 or done == end:
                    row = meter.row(done, lr, backbone_grad)
                    bar.set_postfix(loss=f"{row['loss']:.3f}")
                if has_val and (done % int(cfg.train.eval_every) == 0 or done == int(cfg.train.steps)):
                    row = self._validation_row(done, row, state)
                if row:
                    log.write(row)
                if done % int(cfg.train.checkpoint_every) == 0 or done == end or state["stopped"]:
                    self._save(done, state)
                if state["stopped"]:
                    break
        finally:
            bar.close()
            del batches

    def _forward_backward(self, step: int, batches):
        """Schedules, reseed, the step's batch, loss and gradients, and whether every rank's
        loss and gradients are finite. Returns ``(lr, images, loss, backbone_trained, finite)``."""
        cfg = self.cfg
        frozen = cfg.finetune.mode == "frozen"
        lr = float(self.lr[step])
        apply_schedules(self.optimizer, {"lr": lr, "last_layer_lr": lr, "wd": float(cfg.optim.weight_decay)})
        torch.manual_seed(step_seed(cfg.train.seed, step, self.rank))
        batch = next(batches)
        self.train_module.train()
        if frozen:
            self.model.backbone.eval()
        x = batch["x"].to(self.device, non_blocking=True)
        tm = batch["token_mask"].to(self.device, non_blocking=True)
        y = batch["y"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        backbone_grad = not frozen and step >= self.warm_steps
        with autocast(self.device, str(cfg.train.precision)):
            logits = self.train_module(x, tm, backbone_grad=backbone_grad)
        loss = classification_loss(logits, y, self.ls.multilabel, self.class_weights,
                                   float(cfg.optim.label_smoothing))
        finite = bool(torch.isfinite(loss.detach()))
        if finite:
            loss.backward()
            finite = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in self.params)
        flag = torch.tensor([1.0 if finite else 0.0], device=self.device)
        dist.all_reduce_sum(flag)
        return lr, len(x), loss, backbone_grad, not flag.item() < self.world

    def _apply_gradients(self) -> None:
        if self.cfg.optim.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None],
                                           float(self.cfg.optim.clip_grad))
        self.optimizer.step()

    def _validation_row(self, done: int, row: dict, state: dict) -> dict:
        """Score the validation split: keep the best weights, count evaluations without
        improvement and set ``state["stopped"]`` at ``train.patience`` of them."""
        val = self._validate()
        row = {"step": done, **row, "val_score": val}
        best = state["best_score"]
        if np.isfinite(val) and (best is None or val > best + 1e-9):
            state.update(best_score=float(val), best_step=done, bad_evals=0)
            self._save_best(done, float(val))
        else:
            state["bad_evals"] = int(state["bad_evals"]) + 1
        row["best_val_score"] = state["best_score"]
        patience = int(self.cfg.train.patience)
        if patience and state["bad_evals"] >= patience:
            state["stopped"] = True
            if dist.is_main():
                self.log(f"\nearly stop at step {done}: validation score has not improved for "
                         f"{patience} evaluations (best {state['best_score']:.4f} at step {state['best_step']})")
        return row

    # ------------------------------------------------------------------ outputs
    def _finish(self, state: dict, has_val: bool) -> dict:
        cfg = self.cfg
        if has_val and (self.out / BEST).exists():
            tensors, _meta = ckpt.load_checkpoint(self.out / BEST)
            self.model.load_state_dict(tensors)
        self.model.set_calibration(torch.ones_like(self.model.temperature), torch.zeros_like(self.model.bias))
        precision = str(cfg.train.precision)
        bs = int(cfg.train.eval_batch_size)
        calibration = {"fitted": False}
        n_val = len(self.splits.val) if has_val else 0
        if has_val and cfg.eval.calibrate and n_val < int(cfg.eval.calibration_min_images):
            calibration["reason"] = (f"the validation split has {n_val} images (< eval.calibration_min_images = "
                                     f"{int(cfg.eval.calibration_min_images)}): probabilities left uncalibrated")
            if dist.is_main():
                self.log(f"note: {calibration['reason']}")
        elif has_val and cfg.eval.calibrate:
            val_logits = ev.batched_logits(self.model, eval_loader(self.eval_set, self.splits.val, bs), self.device, precision)
            T, b, info = fit_calibration(val_logits, self.ls.y[self.splits.val], self.ls.multilabel)
            self.model.set_calibration(T, b)
            calibration = {"fitted": True, "on": "validation split", **info}
        test = self.splits.test
        test_logits = ev.batched_logits(self.model, eval_loader(self.eval_set, test, bs), self.device, precision)
        probs = ev.probabilities_from_logits(self.model, test_logits)
        raw = ev.probabilities_from_logits(self.model, test_logits, calibrated=False)
        calibration["test_ece_before"] = expected_calibration_error(self.ls.y[test], raw, self.ls.multilabel)
        calibration["test_ece_after"] = expected_calibration_error(self.ls.y[test], probs, self.ls.multilabel)
        fit = self.splits.fit
        base = {
            "probe": "finetune", "head": str(cfg.model.head), "mode": str(cfg.finetune.mode),
            "label_fraction": self.label_fraction, "n_train": int(len(fit)),
            "n_train_patients": int(len(set(self.ls.groups[fit].tolist()))),
            "n_val": int(len(self.splits.val)) if has_val else 0, "perturbation": None, "drop": None,
            "split": self.splits.description, "seed": int(cfg.train.seed),
            "encoder": self.encoder_info.get("source"), "best_step": state.get("best_step"),
        }
        entries, curves = ev.test_entries(self.ls, test, probs, base, int(cfg.eval.n_boot), int(cfg.train.seed))
        summary = {
            "tasks": self.ls.tasks, "classes": self.ls.classes, "multilabel": self.ls.multilabel,
            "joins": self.ls.summaries, "labelled_images": len(self.ls),
            "patients": int(len(set(self.ls.groups.tolist()))), "split": self.splits.description,
            "n_fit": int(len(fit)), "n_val": base["n_val"], "n_test": int(len(test)),
            "class_counts": _counts(self.ls), "early_stopping": state, "calibration": calibration,
            "encoder": self.encoder_info, "epochs": round(self.plan.epochs(int(cfg.train.steps)), 2),
        }
        if dist.is_main():
            self._write_outputs(entries, curves, summary)
        return {"entries": entries, "summary": summary, "out": str(self.out)}

    def _write_outputs(self, entries, curves, summary) -> None:
        from mammodino.eval.plots import plot_roc

        cfg = self.cfg
        info = {
            "tasks": self.ls.tasks, "classes": self.ls.classes,
            "preprocessing": {**describe(), "resolution": int(cfg.data.resolution),
                              "input_size": self.eval_set.size,
                              "cache_long_side": max(max(int(im.row.get("cache_height") or 0),
                                                         int(im.row.get("cache_width") or 0)) for im in self.ls.images),
                              "geometry": "long side = input_size, zero-padded to a square, image at the left edge",
                              "dbt": "middle slice"},
            "calibration": summary["calibration"], "encoder_source": self.encoder_info,
            "finetune_config": OmegaConf.to_container(cfg, resolve=True),
            "best_step": summary["early_stopping"].get("best_step"),
        }
        save_finetuned(self.model, self.out, info)
        write_results(entries, self.out / "results.json")
        (self.out / "results.md").write_text(markdown_table(entries) + "\n")
        atomic.write_text(self.out / "summary.json", json.dumps(summary, indent=1, default=str))
        title = f"{', '.join(self.ls.tasks)} - fine-tuned {cfg.model.head} head"
        plot_roc(curves, title, self.out / f"roc_{'+'.join(self.ls.tasks)}_finetune.png")
        from mammodino.finetune.plots import plot_training_curve

        plot_training_curve(self.out / "metrics.jsonl", self.out / "training_curve.png")

    def _print_start(self, start: int) -> None:
        cfg, s = self.cfg, self.splits
        n_params = sum(p.numel() for p in self.params)
        self.log(f"mammodino finetune: {', '.join(self.tasks)} ({len(self.ls)} labelled images, "
                 f"{len(s.fit)} fit / {0 if s.val is None else len(s.val)} val / {len(s.test)} test; {s.description}), "
                 f"{self.encoder_info.get('arch')} ViT from {self.encoder_info.get('source')}, head {cfg.model.head}, "
                 f"mode {cfg.finetune.mode} ({n_params / 1e6:.2f} M trained params), input {self.eval_set.size} px, "
                 f"balance {cfg.data.balance}, steps {start}->{cfg.train.steps} "
                 f"(~{self.plan.epochs(int(cfg.train.steps)):.1f} epochs), {self.world} process(es) on {self.device}, "
                 f"out {self.out}")


def _counts(ls) -> list:
    if ls.multilabel:
        return [[int((ls.y[:, t] == 0).sum()), int((ls.y[:, t] == 1).sum())] for t in range(ls.y.shape[1])]
    return np.bincount(ls.y, minlength=ls.n_outputs).tolist()


def finetune(encoder, cache, tasks, labels, out, cfg, **kwargs) -> dict:
    """Python entry point of ``mammodino finetune``: returns ``{"entries", "summary", "out"}``
    (``{"stopped_at": step}`` when ``stop_at`` ended the run early)."""
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    tuner = FineTuner(encoder, cache, tasks, labels, out, cfg, **kwargs)
    try:
        return tuner.run()
    finally:
        tuner.folder.close()
        if dist.is_enabled():
            dist.teardown()


__all__ = ["finetune", "FineTuner", "BEST"]
