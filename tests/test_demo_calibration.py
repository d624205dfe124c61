"""The demo sizes its pretraining with the trainer's own step, fed by the training loader."""

import math

from mammodino import demo, machine
from mammodino.config import load_config
from mammodino.train import step as train_step

from support.micro import MICRO


def test_calibration_times_the_production_step(phantom_cache, monkeypatch):
    calls = []
    real = train_step.TrainStep.__call__

    def spy(self, step, micro_batches):
        result = real(self, step, micro_batches)
        calls.append((step, result.applied, result.images))
        return result

    monkeypatch.setattr(train_step.TrainStep, "__call__", spy)
    cfg = load_config("cpu-tiny", MICRO)
    seconds = demo.calibrate_step_seconds(cfg, phantom_cache, n_steps=2, warmup=1)
    assert math.isfinite(seconds) and seconds > 0
    assert [c[0] for c in calls] == [0, 1, 2]  # one warm-up step, then the timed ones
    assert all(applied and images == cfg.train.batch_size for _, applied, images in calls)


def test_machine_description_names_cpu_and_capability():
    info = machine.describe()
    assert info["cpu"] and info["cpu_capability"] and info["cores"] >= 1 and info["torch_threads"] >= 1
    line = machine.one_line(info)
    assert info["cpu"] in line and info["cpu_capability"] in line
