import pytest
import torch
from torch import nn

from mammodino.train.optim import apply_schedules, build_optimizer, layer_id, param_groups


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Linear(4, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.norm = nn.LayerNorm(4)


def test_layer_ids():
    assert layer_id("cls_token", 12) == 0
    assert layer_id("blocks.3.attn.qkv.weight", 12) == 4
    assert layer_id("norm.weight", 12) == 13


def test_layerwise_decay_patch_embed_and_no_decay():
    head = nn.Module()
    head.last_layer = nn.Linear(4, 8)
    grouped = param_groups({"backbone": Tiny(), "dino_head": head}, 2, 0.5, 0.2)
    groups = {name: g for g in grouped for name in g["names"]}
    assert len(grouped) < len(groups)  # parameters with the same multipliers share a group
    assert groups["backbone.blocks.1.weight"]["lr_multiplier"] == pytest.approx(0.5)  # layer 2 of 3
    assert groups["backbone.blocks.0.weight"]["lr_multiplier"] == pytest.approx(0.25)
    assert groups["backbone.patch_embed.proj.weight"]["lr_multiplier"] == pytest.approx(0.125 * 0.2)
    assert groups["backbone.norm.weight"]["lr_multiplier"] == 1.0
    assert groups["backbone.cls_token"]["wd_multiplier"] == 0.0
    assert groups["backbone.blocks.0.bias"]["wd_multiplier"] == 0.0
    assert groups["backbone.blocks.0.weight"]["wd_multiplier"] == 1.0
    assert groups["dino_head.last_layer.weight"]["is_last_layer"]
    opt = build_optimizer(grouped, (0.9, 0.999))
    apply_schedules(opt, {"lr": 1.0, "wd": 0.1})
    by_name = {name: g for g in opt.param_groups for name in g["names"]}
    assert by_name["dino_head.last_layer.weight"]["lr"] == 1.0  # frozen by the step, not by the lr
    assert by_name["dino_head.last_layer.weight"]["is_last_layer"]
    assert by_name["backbone.blocks.1.weight"]["lr"] == pytest.approx(0.5)
    assert by_name["backbone.blocks.1.weight"]["weight_decay"] == pytest.approx(0.1)
    assert by_name["backbone.cls_token"]["weight_decay"] == 0.0
