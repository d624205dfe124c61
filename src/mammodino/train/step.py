"""One optimisation step, exactly as ``mammodino pretrain`` runs it, as one callable.

``TrainStep(step, micro_batches)`` does: schedules -> per-step seed -> for each micro-batch
(forward: teacher targets, student, losses; backward) -> last-layer freeze -> gradient norm
and clip -> finite vote (all ranks agree) -> AdamW -> teacher EMA; on a non-finite step it
rolls back the loss centres and changes nothing else. The trainer, the demo's step-time
calibration and ``benchmarks/train_step.py`` all call this one object, so the step that is
timed is the step that trains.

The last layer is frozen in one place only: during the first
``optim.freeze_last_layer_fraction`` of the steps its gradients are dropped before the clip,
so AdamW neither moves it nor accumulates moments for it (DINO's ``cancel_gradients_last_layer``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterable

import torch

from mammodino import allocator
from mammodino.models import gemm
from mammodino.models.vit import ARCHS
from mammodino.train import distributed as dist
from mammodino.train.half_batches import HalfBatches
from mammodino.train.monitor import CollapseMonitor
from mammodino.train.optim import apply_schedules, build_optimizer, param_groups
from mammodino.train.schedules import Schedules, build_schedules


def step_seed(seed: int, step: int, rank: int) -> int:
    return (int(seed) * 1_000_003 + int(step) * 1_009 + int(rank)) % (2**63 - 1)


def training_precision(device: torch.device, precision: str) -> str:
    """``bf16`` or ``fp32`` for a training step: ``auto`` is bf16 on GPU and, on CPU, bf16
    where this machine's bf16 GEMMs measured at least 1.3x as fast as fp32 (AMX, AVX512-BF16;
    ``models.gemm.cpu_bf16_pays``, cached per machine), fp32 elsewhere. Master weights,
    optimizer state and losses stay fp32 either way."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    if device.type == "cpu" and gemm.cpu_bf16_pays():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """bf16 autocast on GPU by default (``auto``), on CPU only when asked (``bf16``); a
    training step passes :func:`training_precision` instead, which may pick bf16 on CPU."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def build_monitor(cfg) -> CollapseMonitor:
    # No verdict during the lr warm-up: with LayerScale 1e-5 every image starts at the same
    # CLS point, which is what collapse looks like, until the residual branches grow.
    return CollapseMonitor(cfg.dino.n_prototypes, cfg.monitor.collapse_min_prototypes_frac,
                           cfg.monitor.collapse_min_cls_std,
                           warn_after=max(20, round(cfg.optim.warmup_fraction * cfg.train.steps)))


@dataclass
class StepResult:
    step: int
    applied: bool                      # False: non-finite somewhere; weights and centres unchanged
    losses: dict = field(default_factory=dict)   # mean over this rank's micro-batches
    grad_norm: float = float("nan")    # before clipping
    images: int = 0                    # samples this rank consumed
    values: dict = field(default_factory=dict)   # the schedule values of the step
    stats: dict | None = None          # collapse-monitor figures (first micro-batch)


class TrainStep:
    """The training step of one process; ``student`` is the (possibly DDP/FSDP-wrapped) student."""

    def __init__(self, cfg, model, optimizer: torch.optim.Optimizer, schedules: Schedules,
                 device: torch.device, student=None, monitor: CollapseMonitor | None = None, fsdp: bool = False):
        self.cfg, self.model, self.optimizer, self.schedules = cfg, model, optimizer, schedules
        self.device = device
        self.student = student if student is not None else model.student
        self.monitor = monitor
        self.fsdp = fsdp
        self.rank, self.world = dist.rank(), dist.world_size()
        self.grad_accum = int(cfg.train.grad_accum)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.last_layer = [p for g in optimizer.param_groups if g["is_last_layer"] for p in g["params"]]
        self.loss_buffers = {k: v for k, v in model.named_buffers() if "loss" in k}
        self.precision = training_precision(device, str(cfg.train.precision))

    def __call__(self, step: int, micro_batches: Iterable[dict]) -> StepResult:
        cfg = self.cfg
        values = self.schedules.at(step)
        apply_schedules(self.optimizer, values)
        torch.manual_seed(step_seed(cfg.train.seed, step, self.rank))
        self.optimizer.zero_grad(set_to_none=True)
        saved = {k: v.clone() for k, v in self.loss_buffers.items()}
        logged, finite, stats, images = [], True, None, 0
        it = iter(micro_batches)
        for micro in range(self.grad_accum):
            batch = next(it, None)
            if batch is None:
                raise RuntimeError(f"the data stream ended inside step {step} (micro-batch {micro + 1} of {self.grad_accum})")
            batch = to_device(batch, self.device)
            sync = micro == self.grad_accum - 1 or not hasattr(self.student, "no_sync")
            with contextlib.nullcontext() if sync else self.student.no_sync():
                with autocast(self.device, self.precision):
                    losses = self.model.forward_losses(batch, values["teacher_temp"], self.student)
                loss = losses["loss"] / self.grad_accum
                # Every rank runs its backward even on a bad loss (a rank that skipped it would
                # leave the others waiting in the gradient all-reduce); the vote below skips the step.
                finite = finite and bool(torch.isfinite(loss.detach()))
                loss.backward()
            logged.append({k: v.detach() for k, v in losses.items() if not k.startswith("_")})
            if micro == 0 and self.monitor is not None:
                stats = self.monitor.update(losses["_teacher_probs"], losses["_teacher_cls"])
            images += int(batch["is_dbt"].shape[0])
        means = _mean_of(logged)
        if values["last_layer_frozen"]:
            for p in self.last_layer:
                p.grad = None
        grad_norm = self._norm_and_clip(float(cfg.optim.clip_grad))
        flag = torch.tensor([1.0 if finite and math.isfinite(grad_norm) else 0.0], device=self.device)
        dist.all_reduce_sum(flag)
        result = StepResult(step, applied=bool(flag.item() >= self.world), losses=means, grad_norm=grad_norm,
                            images=images, values=values, stats=stats)
        if not result.applied:
            for k, v in saved.items():  # undo centre updates made from the bad batch
                self.loss_buffers[k].copy_(v)
            self.optimizer.zero_grad(set_to_none=True)
            return result
        self.optimizer.step()
        self.model.update_teacher(values["mom"])
        return result

    def _norm_and_clip(self, max_norm: float) -> float:
        """Total gradient norm (one multi-tensor pass; non-finite when any gradient is), clipped."""
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return 0.0
        if max_norm > 0:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        return float(torch.nn.utils.clip_grad_norm_(params, float("inf")))


def _mean_of(logged: list[dict]) -> dict:
    """Mean of each loss term over the micro-batches, with a single device-to-host copy."""
    keys = list(logged[0])
    table = torch.stack([torch.stack([d[k].float().reshape(()) for k in keys]) for d in logged])
    return dict(zip(keys, table.mean(0).tolist()))


HALF_BATCH_MAX_WIDTH = 256  # ViT width up to which a 2-thread CPU step gains from half-batches


def use_half_batches(cfg, device: torch.device, plain_student: bool) -> bool:
    """``train.half_batches``: ``auto`` splits the backbone passes of a small ViT (width <=
    HALF_BATCH_MAX_WIDTH) on a CPU with two intra-op threads, one process, an unwrapped student
    (no DDP, FSDP or compile) and no bit-exact mode; ``true`` asks for it wherever the student
    is plain; ``false`` (the shipped default) never. Measured (2 threads): the bare `cpu-tiny`
    step 5-7 % faster, ViT-S/14 not (bf16 4 % slower, AVX2 1 % faster: its GEMMs scale across
    both threads already), and the whole `pretrain` command on 2 cores not faster (its loader
    worker takes the time back: steady state 0.269-0.275 vs 0.266-0.268 s/step)."""
    want = cfg.train.get("half_batches", False)  # (a config written before the key: the shipped default)
    if want is False or not plain_student:
        return False
    if cfg.train.compile or cfg.train.deterministic or device.type != "cpu" or dist.world_size() > 1:
        return False
    return want is True or (torch.get_num_threads() == 2 and ARCHS[cfg.model.arch][0] <= HALF_BATCH_MAX_WIDTH)


def build_train_step(cfg, model, device: torch.device) -> TrainStep:
    """Wrap ``model`` for this process group, build AdamW over the wrapped parameters, the
    schedules and the monitor: the one way a step is assembled (trainer, demo, benchmarks)."""
    if device.type == "cpu" and cfg.train.get("keep_freed_memory", True):
        allocator.keep_freed_memory()
    student, fsdp = dist.prepare_for_training(model, cfg, device)
    splittable = hasattr(model, "teacher") and hasattr(model.student, "halves")  # (not the MAE baseline)
    if splittable and use_half_batches(cfg, device, student is model.student and not fsdp):
        model.student.halves = model.teacher.halves = HalfBatches()
    n_blocks = len(model.student.backbone.blocks)
    modules = {name: mod for name, mod in model.student.named_children() if mod is not None}
    optimizer = build_optimizer(
        param_groups(modules, n_blocks, cfg.optim.layerwise_decay, cfg.optim.patch_embed_lr_mult), cfg.optim.betas,
        fused=not fsdp and device.type in ("cpu", "cuda"))
    return TrainStep(cfg, model, optimizer, build_schedules(cfg), device, student=student,
                     monitor=build_monitor(cfg) if hasattr(model, "teacher") else None, fsdp=fsdp)
