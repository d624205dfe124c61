"""Per-step schedules (lr, weight decay, EMA momentum, teacher temperature, last-layer freeze).

All are precomputed arrays indexed by the global step, as in DINOv2, so a resumed run (on any
number of processes) reads exactly the values the uninterrupted run would have used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def cosine_schedule(base: float, final: float, total: int, warmup: int = 0, start_warmup: float = 0.0,
                    freeze: int = 0) -> np.ndarray:
    """``freeze`` steps at 0, then a linear warm-up from ``start_warmup`` to ``base`` over
    ``warmup`` steps, then a half cosine from ``base`` to ``final`` over the remaining steps."""
    total = int(total)
    freeze = min(int(freeze), total)
    warmup = min(int(warmup), total - freeze)
    parts = [np.zeros(freeze)]
    if warmup:
        parts.append(np.linspace(start_warmup, base, warmup, endpoint=False))
    rest = total - freeze - warmup
    if rest > 0:
        t = np.arange(rest)
        denom = max(rest - 1, 1)
        parts.append(final + 0.5 * (base - final) * (1 + np.cos(math.pi * t / denom)))
    out = np.concatenate(parts) if parts else np.zeros(0)
    assert len(out) == total
    return out


def linear_then_constant(start: float, end: float, total: int, ramp: int) -> np.ndarray:
    """Linear from ``start`` to ``end`` over ``ramp`` steps, then ``end`` (teacher temperature)."""
    ramp = min(int(ramp), int(total))
    out = np.full(int(total), float(end))
    if ramp:
        out[:ramp] = np.linspace(start, end, ramp)
    return out


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """DINOv2's square-root scaling rule relative to a batch of 1024."""
    return base_lr * math.sqrt(batch_size / 1024.0)


@dataclass
class Schedules:
    lr: np.ndarray
    weight_decay: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray
    freeze_last_layer_steps: int = 0  # the step drops the last layer's gradients before this step

    def at(self, step: int) -> dict:
        i = min(int(step), len(self.lr) - 1)
        return {
            "lr": float(self.lr[i]),
            "last_layer_frozen": int(step) < self.freeze_last_layer_steps,
            "wd": float(self.weight_decay[i]),
            "mom": float(self.momentum[i]),
            "teacher_temp": float(self.teacher_temp[i]),
        }


def build_schedules(cfg) -> Schedules:
    steps = int(cfg.train.steps)
    o = cfg.optim
    lr = scaled_lr(o.base_lr, cfg.train.batch_size)
    min_lr = min(o.min_lr, lr)
    warmup = round(o.warmup_fraction * steps)
    freeze = round(o.freeze_last_layer_fraction * steps)
    return Schedules(
        lr=cosine_schedule(lr, min_lr, steps, warmup=warmup),
        weight_decay=cosine_schedule(o.weight_decay, o.weight_decay_end, steps),
        momentum=cosine_schedule(o.momentum_teacher, o.final_momentum_teacher, steps),
        teacher_temp=linear_then_constant(o.warmup_teacher_temp, o.teacher_temp, steps,
                                          round(o.teacher_temp_warmup_fraction * steps)),
        # the prototypes stay fixed while the rest settles (DINO's trick); see train.step
        freeze_last_layer_steps=freeze,
    )
