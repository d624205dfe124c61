"""A disk that fills up (or turns read-only) while pretraining writes a checkpoint or its
metrics: the run stops with one clear message naming the file, the previous
checkpoint-last stays loadable, no partial file is left, and --resume continues.

Simulated in-process (safetensors' save_file writes half a file then raises ENOSPC;
os.replace raises EROFS) and for real through the CLI in a subprocess whose file size is
limited (RLIMIT_FSIZE, SIGXFSZ ignored: the write fails with EFBIG).
"""

from __future__ import annotations

import errno
import os
import sys

import pytest
import torch

from mammodino.cli import main
from mammodino.config import load_config
from mammodino.errors import UserError
from support import procs
from mammodino.train import checkpoint as ckpt
from mammodino.train.trainer import pretrain

from support.micro import MICRO

THREE_STEPS = MICRO + ["train.steps=3", "train.checkpoint_every=1"]


def _assert_previous_checkpoint_kept(run_dir, step):
    tensors, meta = ckpt.load_checkpoint(run_dir / ckpt.LAST)
    assert meta["state"]["step"] == step
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())
    assert not list(run_dir.glob("*" + ckpt.TMP_SUFFIX)), "a partial checkpoint was left"


@pytest.mark.parametrize("how", ["save_file-ENOSPC", "os.replace-EROFS"])
def test_checkpoint_write_fails_then_resume(phantom_cache, tmp_path, monkeypatch, how):
    torch.set_num_threads(1)
    cfg = load_config("cpu-tiny", THREE_STEPS)
    run_dir = tmp_path / "run"
    writes = {"n": 0}
    if how == "save_file-ENOSPC":
        real = ckpt.save_file

        def save_file(tensors, filename, metadata=None):
            writes["n"] += 1
            if writes["n"] == 2:  # the disk fills up half-way through the 2nd checkpoint
                real(tensors, filename, metadata=metadata)
                with open(filename, "r+b") as fh:
                    fh.truncate(os.path.getsize(filename) // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
            return real(tensors, filename, metadata=metadata)

        monkeypatch.setattr(ckpt, "save_file", save_file)
        cause = os.strerror(errno.ENOSPC)
    else:
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith(".safetensors"):
                writes["n"] += 1
                if writes["n"] >= 2:  # the run folder turned read-only after the 1st checkpoint
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)
        cause = os.strerror(errno.EROFS)

    with pytest.raises(UserError) as err:
        pretrain(cfg, [phantom_cache], run_dir, progress=False)
    monkeypatch.undo()
    message = str(err.value)
    assert str(run_dir / ckpt.LAST) in message and cause in message, message
    _assert_previous_checkpoint_kept(run_dir, step=1)
    # space is back: --resume continues from step 1 and finishes
    last = pretrain(cfg, [phantom_cache], run_dir, progress=False, resume=True)
    assert last["step"] == 3
    _assert_previous_checkpoint_kept(run_dir, step=3)


def test_checkpoint_on_a_full_disk_through_the_cli(phantom_cache, tmp_path):
    """The real command: step 1 is saved; resumed with files limited to half a checkpoint,
    the step-2 save fails with EFBIG. Exit 2, one line naming the file, no traceback."""
    run_dir = tmp_path / "run"
    base = [sys.executable, "-m", "mammodino", "pretrain", "--config", "cpu-tiny", "--data", str(phantom_cache),
            "--out", str(run_dir), "--no-progress", *THREE_STEPS]
    first = procs.run(base + ["--stop-at", "1"], env=procs.quiet_env(), timeout=300)
    assert first.returncode == 0, first.output[-2000:]
    size = (run_dir / ckpt.LAST).stat().st_size
    full = procs.run(base + ["--resume"], env=procs.quiet_env(), timeout=300, fsize=size // 2)
    assert full.returncode == 2, full.output[-2500:]
    assert "Traceback" not in full.output
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(run_dir / ckpt.LAST) in errors[0] and "File too large" in errors[0], errors
    _assert_previous_checkpoint_kept(run_dir, step=1)


def test_metrics_log_on_a_full_disk_is_a_clear_error(phantom_cache, tmp_path, monkeypatch, capsys):
    """On a really full disk the first write to fail may be the step's metrics.jsonl line
    (written just before the checkpoint): that too must be one message, exit 2."""
    from support.procs import FullDisk
    from mammodino.train import metrics_log

    real_init = metrics_log.MetricsLog.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        if self.fh is not None:
            self.fh = FullDisk(self.fh, after_writes=1)  # the 2nd line hits a full disk

    monkeypatch.setattr(metrics_log.MetricsLog, "__init__", init)
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    rc = main(["pretrain", "--config", "cpu-tiny", "--data", str(phantom_cache), "--out", str(run_dir),
               "--no-progress", *THREE_STEPS])
    err = capsys.readouterr().err
    assert rc == 2 and "metrics.jsonl" in err and os.strerror(errno.ENOSPC) in err, err[-2000:]
    assert "Traceback" not in err
    _assert_previous_checkpoint_kept(run_dir, step=1)
