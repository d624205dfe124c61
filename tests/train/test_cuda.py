"""The training step on a GPU (bf16 autocast, optional torch.compile); skipped without CUDA."""

import math

import pytest
import torch

from mammodino.config import load_config
from mammodino.data.dataset import PretrainDataset, collate
from mammodino.data.batch_plan import BatchPlan
from mammodino.train.ssl_model import SSLModel
from mammodino.train.step import build_train_step

from support.micro import MICRO

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("compile_", [False, True])
def test_bf16_step_on_gpu_trains_and_stays_finite(phantom_cache, compile_):
    cfg = load_config("cpu-tiny", MICRO + ["train.precision=auto", f"train.compile={str(compile_).lower()}",
                                           "train.deterministic=false"])
    dataset = PretrainDataset([str(phantom_cache)], cfg)
    plan = BatchPlan(dataset, cfg)
    device = torch.device("cuda")
    step = build_train_step(cfg, SSLModel(cfg).to(device), device)
    teacher0 = step.model.teacher.backbone.blocks[0].mlp.fc1.weight.detach().clone()
    for s in range(3):
        r = step(s, [collate([dataset[k] for k in plan.batch_keys(s)])])
        assert r.applied and math.isfinite(r.losses["loss"]) and math.isfinite(r.grad_norm)
    assert step.model.teacher.backbone.blocks[0].mlp.fc1.weight.dtype == torch.float32  # fp32 master weights
    assert not torch.equal(teacher0, step.model.teacher.backbone.blocks[0].mlp.fc1.weight)  # EMA moved
