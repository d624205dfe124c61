"""SIGKILL a real `mammodino finetune` process (once at a random moment, once in the middle of
a checkpoint write); resumed with --resume it ends with the weights, AdamW moments, early
stopping state and results of an uninterrupted run (CPU, deterministic, 1 thread)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mammodino.train.checkpoint import load_checkpoint

from ._helpers import MICRO_FT

STEPS = 8


def _cmd(cache, labels, out, resume=False):
    cmd = [sys.executable, "-m", "mammodino", "finetune", str(cache), *MICRO_FT, f"train.steps={STEPS}",
           "train.checkpoint_every=1", "train.eval_every=2", "--random-init", "--arch", "tiny", "--patch-size", "16",
           "--task", "phantom-lesion", "--labels", str(labels), "--out", str(out), "--config", "cpu-tiny",
           "--no-progress", "--threads", "1"]
    return cmd + (["--resume"] if resume else [])


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p.endswith("src")] + [env.get("PYTHONPATH", "")])
    return env


def _logged(out) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(x)["step"] for x in lines if x.strip().startswith("{") and x.strip().endswith("}")]
    return max(steps, default=0)


def _run_and_kill(cmd, out, after_step, mid_write, log):
    partial = out / "checkpoint-last.safetensors.partial"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline and _logged(out) < after_step:
            time.sleep(0.002)
        if mid_write:
            while proc.poll() is None and time.monotonic() < deadline and not partial.exists():
                time.sleep(0.0002)
        else:
            time.sleep(float(np.random.default_rng(after_step).uniform(0, 0.3)))
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return killed, partial.exists()


@pytest.mark.slow
def test_killed_finetune_resumes_to_the_uninterrupted_result(lesion_data, tmp_path):
    cache, labels = lesion_data
    ref, run = tmp_path / "ref", tmp_path / "run"
    done = subprocess.run(_cmd(cache, labels, ref), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert _run_and_kill(_cmd(cache, labels, run), run, 2, False, tmp_path / "a.log")[0]
    killed, partial_left = _run_and_kill(_cmd(cache, labels, run, True), run, 4, True, tmp_path / "b.log")
    assert killed and partial_left  # the kill landed inside a checkpoint write
    assert "resuming from checkpoint-last.safetensors" in (tmp_path / "b.log").read_text()
    done = subprocess.run(_cmd(cache, labels, run, True), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("checkpoint-last.safetensors", "model.safetensors", "best.safetensors"):
        a, meta_a = load_checkpoint(ref / name)
        b, meta_b = load_checkpoint(run / name)
        assert sorted(a) == sorted(b)
        assert [k for k in a if not torch.equal(a[k], b[k])] == [], name
    assert meta_a.get("best") == meta_b.get("best")
    assert json.loads((ref / "results.json").read_text()) == json.loads((run / "results.json").read_text())
    assert not list(run.glob("*.partial"))
