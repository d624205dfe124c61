import math

import numpy as np
import pytest

from mammodino.config import load_config
from mammodino.train.schedules import build_schedules, cosine_schedule, linear_then_constant, scaled_lr


def test_cosine_known_values():
    s = cosine_schedule(1.0, 0.0, total=5)
    # half cosine over 5 points: 1, cos^2 shape -> 0.5*(1+cos(pi*t/4))
    assert np.allclose(s, [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0])


def test_cosine_with_warmup_and_freeze():
    s = cosine_schedule(2.0, 0.0, total=10, warmup=4, freeze=2)
    assert len(s) == 10
    assert np.allclose(s[:2], 0)
    assert np.allclose(s[2:6], [0.0, 0.5, 1.0, 1.5])
    assert s[6] == pytest.approx(2.0) and s[-1] == pytest.approx(0.0)
    assert np.all(np.diff(s[6:]) <= 0)


def test_teacher_temp_ramp():
    t = linear_then_constant(0.04, 0.07, total=10, ramp=4)
    assert np.allclose(t[:4], [0.04, 0.05, 0.06, 0.07])
    assert np.allclose(t[4:], 0.07)


def test_sqrt_scaling_rule():
    assert scaled_lr(0.004, 1024) == pytest.approx(0.004)
    assert scaled_lr(0.004, 256) == pytest.approx(0.002)


def test_build_schedules_from_config():
    cfg = load_config("cpu-tiny", ["train.steps=100", "optim.freeze_last_layer_fraction=0.05"])
    s = build_schedules(cfg)
    lr = scaled_lr(cfg.optim.base_lr, cfg.train.batch_size)
    assert s.lr[0] == 0 and s.lr[10] == pytest.approx(lr)  # 10 % warm-up
    assert s.freeze_last_layer_steps == 5  # 5 % of 100 steps
    assert s.at(4)["last_layer_frozen"] and not s.at(5)["last_layer_frozen"]
    assert s.momentum[0] == pytest.approx(cfg.optim.momentum_teacher) and s.momentum[-1] == pytest.approx(1.0)
    assert s.weight_decay[0] == pytest.approx(0.04) and s.weight_decay[-1] == pytest.approx(0.2)
    assert s.teacher_temp[0] == pytest.approx(cfg.optim.warmup_teacher_temp)
    assert s.teacher_temp[30] == pytest.approx(cfg.optim.teacher_temp)
    assert s.at(10_000)["lr"] == pytest.approx(s.lr[-1])  # past the end: the last value
