"""Two processes under torchrun (gloo, CPU), and resuming that run on one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mammodino.config import load_config
from mammodino.train import checkpoint as ckpt
from mammodino.train.trainer import pretrain

from support.micro import MICRO

# KoLeo's nearest neighbours are taken within each process's share of the batch (as in
# DINOv2), so it depends on the number of processes, and so do the per-rank drop-path draws:
# both off here.
EXACT = MICRO + ["train.precision=fp32", "model.drop_path_rate=0.0", "dino.koleo_loss_weight=0.0", "train.steps=4", "train.checkpoint_every=1"]


def _torchrun(cache, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "mammodino", "pretrain", "--config", "cpu-tiny", "--data", str(cache), "--out", str(out),
           "--no-progress", *extra, *EXACT]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _state(run):
    tensors, meta = ckpt.load_checkpoint(Path(run) / ckpt.LAST)
    return {k: v for k, v in tensors.items() if k.startswith(("student.", "teacher."))}, meta


def _metrics(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _worst(a, b, part=""):
    return max(float((a[k] - b[k]).abs().max()) for k in a if part in k)


def _same_run(a, b):
    # Backbones agree to float summation order. The slice projector's biases start at 0 and
    # get near-zero gradients, which Adam's first steps normalise to +-lr: there summation
    # order shows up as differences of the order of lr (1e-4 here).
    assert _worst(a, b, ".backbone.") < 2e-5
    assert _worst(a, b) < 1e-3


@pytest.mark.slow
def test_two_processes_match_one_and_resume_on_one(phantom_cache, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config("cpu-tiny", EXACT)
    pretrain(cfg, [phantom_cache], tmp_path / "single", progress=False)
    one, _ = _state(tmp_path / "single")

    _torchrun(phantom_cache, tmp_path / "ddp")
    two, meta = _state(tmp_path / "ddp")
    assert meta["state"]["world_size"] == 2 and meta["state"]["step"] == 4
    # same global batch, data order and schedules: the same weights up to summation order
    _same_run(one, two)

    # 2 processes stop after step 2; 1 process resumes and finishes the same schedule
    _torchrun(phantom_cache, tmp_path / "moved", "--stop-at", "2")
    assert _state(tmp_path / "moved")[1]["state"]["step"] == 2
    pretrain(cfg, [phantom_cache], tmp_path / "moved", progress=False, resume=True)
    moved, meta = _state(tmp_path / "moved")
    assert meta["state"]["step"] == 4 and meta["state"]["world_size"] == 1
    _same_run(one, moved)
    ref = {r["step"]: r for r in _metrics(tmp_path / "single")}
    got = {r["step"]: r for r in _metrics(tmp_path / "moved")}
    assert sorted(got) == [1, 2, 3, 4]
    for step in (3, 4):
        assert got[step]["lr"] == ref[step]["lr"] and got[step]["teacher_temp"] == ref[step]["teacher_temp"]


@pytest.mark.slow
def test_fsdp2_two_processes_stop_and_resume_match_one(phantom_cache, tmp_path):
    torch.set_num_threads(1)
    pretrain(load_config("cpu-tiny", EXACT), [phantom_cache], tmp_path / "single", progress=False)
    one, _ = _state(tmp_path / "single")
    _torchrun(phantom_cache, tmp_path / "fsdp", "--stop-at", "2", "train.fsdp=true")
    _torchrun(phantom_cache, tmp_path / "fsdp", "--resume", "train.fsdp=true")
    sharded, meta = _state(tmp_path / "fsdp")
    assert meta["state"]["step"] == 4 and meta["state"]["world_size"] == 2
    _same_run(one, sharded)  # checkpoints hold full tensors, whatever the sharding
