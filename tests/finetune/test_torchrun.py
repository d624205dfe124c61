"""finetune under torchrun (2 processes, gloo, CPU) trains the model one process trains."""

import os
import subprocess
import sys

import pytest
import torch

from mammodino.train.checkpoint import load_checkpoint

from ._helpers import MICRO_FT


def _cmd(cache, labels, out, launcher):
    return [*launcher, "-m", "mammodino", "finetune", str(cache), *MICRO_FT, "model.drop_path_rate=0.0",
            "train.steps=4", "--random-init", "--arch", "tiny", "--patch-size", "16", "--task", "phantom-lesion",
            "--labels", str(labels), "--out", str(out), "--config", "cpu-tiny", "--no-progress", "--device", "cpu"]


@pytest.mark.slow
def test_two_processes_train_the_single_process_model(lesion_data, tmp_path):
    cache, labels = lesion_data
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {"one": [sys.executable], "two": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                           "--nproc_per_node=2"]}
    for name, launcher in runs.items():
        proc = subprocess.run(_cmd(cache, labels, tmp_path / name, launcher), env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, meta_a = load_checkpoint(tmp_path / "one" / "checkpoint-last.safetensors")
    b, meta_b = load_checkpoint(tmp_path / "two" / "checkpoint-last.safetensors")
    assert meta_b["state"]["world_size"] == 2 and meta_a["state"]["step"] == meta_b["state"]["step"] == 4
    worst = max(float((a[k] - b[k]).abs().max()) for k in a if k.startswith("model.") and a[k].is_floating_point())
    assert worst < 1e-4  # gradients averaged over 2 x 2 samples = the mean over 4: float summation order only
    assert (tmp_path / "two" / "model.safetensors").exists() and (tmp_path / "two" / "results.json").exists()
