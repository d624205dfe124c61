"""End-to-end pretraining on the phantom cache: exact resume, non-finite containment."""

import json

import pytest
import torch

from mammodino.config import load_config
from mammodino.errors import UserError
from mammodino.train import checkpoint as ckpt
from mammodino.train.trainer import NonFiniteLossError, pretrain

from support.micro import MICRO
from support.tamper import tampered_batches


def _weights(run_dir):
    tensors, meta = ckpt.load_checkpoint(run_dir / ckpt.LAST)
    return {k: v for k, v in tensors.items() if k.startswith(("student.", "teacher.", "dino_loss", "ibot_loss"))}, meta


def test_interrupted_and_resumed_run_equals_uninterrupted(phantom_cache, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config("cpu-tiny", MICRO)
    full = pretrain(cfg, [phantom_cache], tmp_path / "full", progress=False)
    assert full["step"] == 6
    pretrain(cfg, [phantom_cache], tmp_path / "cut", progress=False, stop_at=3)  # "killed" after step 3
    _, meta = _weights(tmp_path / "cut")
    assert meta["state"]["step"] == 3
    pretrain(cfg, [phantom_cache], tmp_path / "cut", progress=False, resume=True)
    a, meta_a = _weights(tmp_path / "full")
    b, meta_b = _weights(tmp_path / "cut")
    assert meta_b["state"]["step"] == 6
    assert a.keys() == b.keys()
    diffs = {k: float((a[k].float() - b[k].float()).abs().max()) for k in a}
    assert max(diffs.values()) == 0.0, {k: v for k, v in diffs.items() if v}
    # the resumed metrics read as one run
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "dino_loss", "ibot_loss", "koleo_loss", "slice_loss", "lr", "images_per_s"):
        assert key in rows[-1]
    assert (tmp_path / "full" / "loss_curve.png").stat().st_size > 1000
    assert (tmp_path / "full" / "config.yaml").exists()


def test_existing_run_is_not_overwritten(phantom_cache, tmp_path):
    cfg = load_config("cpu-tiny", MICRO + ["train.steps=1"])
    pretrain(cfg, [phantom_cache], tmp_path / "r", progress=False)
    before = (tmp_path / "r" / ckpt.LAST).read_bytes()
    with pytest.raises(UserError, match="--resume"):
        pretrain(cfg, [phantom_cache], tmp_path / "r", progress=False)
    assert (tmp_path / "r" / ckpt.LAST).read_bytes() == before


def test_nonfinite_batches_are_skipped_then_the_run_stops(phantom_cache, tmp_path):
    cfg = load_config("cpu-tiny", MICRO + ["train.max_nonfinite_steps=3", "train.steps=8"])

    def poison(step, batch):
        if step == 1 or step >= 3:
            batch["global_crops"][0, 0, 0, 0] = float("nan")
        return batch

    with pytest.raises(NonFiniteLossError, match="3 consecutive"):
        with tampered_batches(poison):
            pretrain(cfg, [phantom_cache], tmp_path / "nan", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["step"] for r in rows if "skipped" in r]
    assert skipped == [1, 3, 4, 5]
    tensors, meta = ckpt.load_checkpoint(tmp_path / "nan" / ckpt.LAST)
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())


def test_missing_data_folder_is_a_clear_error(tmp_path):
    cfg = load_config("cpu-tiny", MICRO)
    with pytest.raises(UserError, match="no_such_cache"):
        pretrain(cfg, [tmp_path / "no_such_cache"], tmp_path / "r", progress=False)
