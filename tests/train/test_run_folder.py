"""Run-folder protection: checksummed checkpoints with fallback, no accidental reuse, config
comparison on resume, one writer at a time."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from mammodino.config import load_config
from mammodino.errors import UserError
from mammodino.locks import LOCK_NAME
from mammodino.train import checkpoint as ckpt
from mammodino.train.trainer import pretrain

from support.micro import MICRO


def _flip_tensor_byte(path):
    """Flip one byte in the tensor data (past the JSON header): loads fine without a checksum."""
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    pos = 8 + header + (len(data) - 8 - header) // 2
    data[pos] ^= 0x40
    path.write_bytes(bytes(data))


def test_checksum_catches_flipped_tensor_bytes(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / ckpt.LAST, {"student.w": torch.arange(1000.0)}, {"state": {"step": 1}})
    _flip_tensor_byte(path)
    with pytest.raises(ckpt.DamagedCheckpoint, match="checksum"):
        ckpt.load_checkpoint(path)


def test_non_finite_weights_are_refused(tmp_path):
    w = torch.zeros(4)
    w[2] = float("nan")
    path = ckpt.save_checkpoint(tmp_path / ckpt.LAST, {"student.w": w}, {"state": {"step": 1}})
    with pytest.raises(ckpt.DamagedCheckpoint, match="NaN/Inf.*student.w"):
        ckpt.load_checkpoint(path)


@pytest.fixture(scope="module")
def trained(phantom_cache, tmp_path_factory):
    """A 4-step run with periodic copies at 2 and 4 (checkpoint-last = step 4)."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run") / "r"
    cfg = load_config("cpu-tiny", MICRO + ["train.steps=4", "train.keep_every=2"])
    pretrain(cfg, [phantom_cache], run, progress=False, echo_config=False)
    return cfg, run


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_damaged_last_falls_back_and_is_kept(trained, phantom_cache, tmp_path, capsys):
    cfg, run = trained
    run = _copy(run, tmp_path / "r")
    _flip_tensor_byte(run / ckpt.LAST)
    damaged_bytes = (run / ckpt.LAST).read_bytes()
    cfg6 = load_config("cpu-tiny", MICRO + ["train.steps=6", "train.keep_every=2"])
    pretrain(cfg6, [phantom_cache], run, resume=True, progress=False, echo_config=False)
    out = capsys.readouterr().out
    assert "damaged" in out and "resuming from checkpoint-0000004" in out
    assert (run / (ckpt.LAST + ".damaged")).read_bytes() == damaged_bytes  # never overwritten
    _, meta = ckpt.load_checkpoint(run / ckpt.LAST)
    assert meta["state"]["step"] == 6


def test_every_checkpoint_damaged_stops_without_touching_the_run(trained, phantom_cache, tmp_path):
    cfg, run = trained
    run = _copy(run, tmp_path / "r")
    for p in ckpt.checkpoint_candidates(run):
        p.write_bytes(p.read_bytes()[:100])  # truncated
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="no usable checkpoint") as exc:
        pretrain(cfg, [phantom_cache], run, resume=True, progress=False, echo_config=False)
    assert ckpt.LAST in str(exc.value)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    with pytest.raises(UserError, match="already holds a run"):  # without --resume: refused too
        pretrain(cfg, [phantom_cache], run, progress=False, echo_config=False)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_changed_experiment_config_is_refused_unless_allowed(trained, phantom_cache, tmp_path, capsys):
    cfg, run = trained
    run = _copy(run, tmp_path / "r")
    old_config = (run / "config.yaml").read_text()
    for change in (["train.batch_size=8"], ["train.seed=3"], ["model.arch=small"]):
        changed = load_config("cpu-tiny", MICRO + ["train.steps=4", "train.keep_every=2"] + change)
        key = change[0].split("=")[0]
        with pytest.raises(UserError, match=key.replace(".", r"\.")):
            pretrain(changed, [phantom_cache], run, resume=True, progress=False, echo_config=False)
        assert (run / "config.yaml").read_text() == old_config
    # another data folder is an experiment change too
    other = _copy(phantom_cache, tmp_path / "other_cache")
    with pytest.raises(UserError, match="--data"):
        pretrain(cfg, [other], run, resume=True, progress=False, echo_config=False)
    # housekeeping (more steps, log interval) is logged, not refused
    longer = load_config("cpu-tiny", MICRO + ["train.steps=5", "train.keep_every=2", "train.log_every=2"])
    pretrain(longer, [phantom_cache], run, resume=True, progress=False, echo_config=False)
    assert "train.steps: 4 -> 5" in capsys.readouterr().out
    # allowed: logged, previous config kept beside the new one
    seeded = load_config("cpu-tiny", MICRO + ["train.steps=6", "train.keep_every=2", "train.seed=3"])
    pretrain(seeded, [phantom_cache], run, resume=True, progress=False, echo_config=False, allow_config_change=True)
    assert "train.seed: 0 -> 3" in capsys.readouterr().out
    assert "seed: 0" in (run / "config-before-step-5.yaml").read_text()
    assert "seed: 3" in (run / "config.yaml").read_text()


def test_allowed_arch_change_is_a_clear_error_not_a_traceback(trained, phantom_cache, tmp_path):
    cfg, run = trained
    run = _copy(run, tmp_path / "r")
    small = load_config("cpu-tiny", MICRO + ["train.steps=4", "train.keep_every=2", "model.arch=small"])
    with pytest.raises(UserError, match="does not match this config"):
        pretrain(small, [phantom_cache], run, resume=True, progress=False, echo_config=False, allow_config_change=True)


HOLDER = textwrap.dedent("""
    import sys, time
    from mammodino.locks import FolderLock
    lock = FolderLock(sys.argv[1], "run folder").acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_second_writer_is_refused_naming_the_holder(trained, phantom_cache, tmp_path):
    cfg, run = trained
    run = _copy(run, tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"being written by PID {holder.pid} on host"):
            pretrain(cfg, [phantom_cache], run, resume=True, progress=False, echo_config=False)
    finally:
        holder.kill()
        holder.wait()
    # the holder died by SIGKILL: its lock file is still there, and is taken over
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == holder.pid
    cfg5 = load_config("cpu-tiny", MICRO + ["train.steps=5", "train.keep_every=2"])
    pretrain(cfg5, [phantom_cache], run, resume=True, progress=False, echo_config=False)
    assert not (run / LOCK_NAME).exists()
