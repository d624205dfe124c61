"""The training step the trainer, the demo calibration and the benchmark share."""

import math

import pytest
import torch

from mammodino.config import load_config
from mammodino.data.dataset import PretrainDataset, collate
from mammodino.data.batch_plan import BatchPlan
from mammodino.train.ssl_model import SSLModel
from mammodino.train.step import build_train_step

from support.micro import MICRO


def _setup(phantom_cache, extra=()):
    cfg = load_config("cpu-tiny", MICRO + ["train.steps=10", *extra])
    dataset = PretrainDataset([str(phantom_cache)], cfg)
    plan = BatchPlan(dataset, cfg)
    torch.manual_seed(0)
    step = build_train_step(cfg, SSLModel(cfg), torch.device("cpu"))
    return cfg, step, lambda s: collate([dataset[k] for k in plan.batch_keys(s)])


def _last_layer(step):
    return {n: p.detach().clone() for n, p in step.model.student.named_parameters() if "last_layer" in n}


def test_last_layer_frozen_by_dropping_its_gradients_only(phantom_cache):
    # 10 steps x 0.2: steps 0 and 1 frozen
    cfg, step, batch = _setup(phantom_cache, ["optim.freeze_last_layer_fraction=0.2"])
    assert step.schedules.freeze_last_layer_steps == 2 and step.last_layer
    before = _last_layer(step)
    backbone_before = step.model.student.backbone.blocks[0].mlp.fc1.weight.detach().clone()
    for s in range(2):
        r = step(s, [batch(s)])
        assert r.applied and r.values["last_layer_frozen"]
    after = _last_layer(step)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(p not in step.optimizer.state for p in step.last_layer)  # no AdamW moments while frozen
    assert not torch.equal(backbone_before, step.model.student.backbone.blocks[0].mlp.fc1.weight)
    for g in step.optimizer.param_groups:  # the lr is not the freeze mechanism
        assert g["lr"] > 0 or g["lr_multiplier"] == 0
    r = step(2, [batch(2)])
    assert r.applied and not r.values["last_layer_frozen"]
    moved = _last_layer(step)
    assert any(not torch.equal(after[n], moved[n]) for n in after)


def test_nonfinite_batch_changes_nothing(phantom_cache):
    cfg, step, batch = _setup(phantom_cache)
    step(0, [batch(0)])
    state = {k: v.detach().clone() for k, v in step.model.state_dict().items()}
    bad = batch(1)
    bad["global_crops"][0, 0, 0, 0] = float("nan")
    r = step(1, [bad])
    assert not r.applied and not math.isfinite(r.losses["loss"])
    after = step.model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # weights, teacher and loss centres
    assert all(p.grad is None for p in step.params)
    r = step(1, [batch(1)])
    assert r.applied and math.isfinite(r.grad_norm) and r.images == cfg.train.batch_size


def test_micro_batches_are_consumed_and_averaged(phantom_cache):
    cfg, step, batch = _setup(phantom_cache, ["train.grad_accum=2", "train.batch_size=4"])
    it = iter([batch(0), batch(1), batch(2)])
    r = step(0, it)
    assert r.applied and r.images == 2 * cfg.train.batch_size
    assert next(it) is not None  # exactly grad_accum micro-batches were taken, the third is left
    assert set(r.losses) >= {"loss", "dino_loss", "ibot_loss", "koleo_loss"}
    with pytest.raises(RuntimeError, match="ended"):
        step(1, iter([batch(1)]))  # too few micro-batches is an error, not a silent half step


@pytest.mark.parametrize("pays", [True, False])
def test_auto_precision_on_cpu_follows_the_measured_bf16_verdict(monkeypatch, pays):
    from mammodino.models import gemm
    from mammodino.train.step import training_precision

    monkeypatch.setattr(gemm, "cpu_bf16_pays", lambda: pays)
    cpu = torch.device("cpu")
    assert training_precision(cpu, "auto") == ("bf16" if pays else "fp32")
    assert training_precision(cpu, "fp32") == "fp32" and training_precision(cpu, "bf16") == "bf16"
    assert training_precision(torch.device("cuda"), "auto") == "bf16"


def test_bf16_step_on_cpu_learns_like_fp32(phantom_cache):
    """Same batches, both precisions: the bf16 autocast step stays close to the fp32 one."""
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg, step, batch = _setup(phantom_cache, [f"train.precision={precision}"])
        assert step.precision == precision
        losses[precision] = [step(s, [batch(s)]).losses["loss"] for s in range(4)]
        assert next(step.model.student.parameters()).dtype == torch.float32  # fp32 master weights
    for a, b in zip(losses["fp32"], losses["bf16"]):
        assert math.isfinite(b) and abs(a - b) < 0.02 * abs(a), losses
