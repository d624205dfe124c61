"""The fine-tuned model: gradient checkpointing changes nothing but memory, files round-trip,
bad folders are clear errors."""

import json

import pytest
import torch

from mammodino.errors import UserError
from mammodino.finetune.heads import build_head
from mammodino.finetune.model import FineTuneModel, load_finetuned, save_finetuned, set_drop_path
from mammodino.models.vit import build_vit


def _model(kind="attention", ckpt=False, multilabel=False):
    torch.manual_seed(0)
    vit = build_vit("tiny", patch_size=16, num_register_tokens=4)
    return FineTuneModel(vit, build_head(kind, vit.embed_dim, 3, hidden=8), multilabel=multilabel, grad_checkpointing=ckpt)


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 1, 48, 48)
    grads = []
    for ckpt in (False, True):
        m = _model(ckpt=ckpt).train()
        m(x).pow(2).sum().backward()
        grads.append({k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-6) for k in grads[0])


def test_set_drop_path_is_linear_over_depth():
    m = _model()
    set_drop_path(m.backbone, 0.2)
    rates = [blk.sample_drop_ratio for blk in m.backbone.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)


@pytest.mark.parametrize("kind, multilabel", [("linear", False), ("attention", True)])
def test_save_and_load_round_trip(tmp_path, kind, multilabel):
    m = _model(kind, multilabel=multilabel).eval()
    m.set_calibration(torch.full(m.temperature.shape, 1.7), torch.tensor([0.1, -0.2, 0.3]))
    save_finetuned(m, tmp_path / "m", {"tasks": ["t"], "classes": ["a", "b", "c"], "preprocessing": {"input_size": 48}})
    loaded, config = load_finetuned(tmp_path / "m")
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(m.probabilities(x), loaded.probabilities(x))
    assert config["head"]["kind"] == kind and config["multilabel"] is multilabel
    p = loaded.probabilities(x)
    assert torch.allclose(p.sum(1), torch.ones(2)) != multilabel  # softmax rows sum to 1, sigmoids do not


def test_bad_model_folders_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_finetuned(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "mammodino-encoder"}))
    with pytest.raises(UserError, match="not a fine-tuned mammodino model"):
        load_finetuned(tmp_path)


@pytest.mark.parametrize("change, named", [
    ({"img_size": 160_000}, "img_size"), ({"patch_size": 0}, "patch_size"), ({"arch": "giant"}, "arch"),
    ({"embed_dim": "wide"}, "does not fit"), ({"patch_size": 8, "img_size": 48}, "does not fit"),
])
def test_hostile_encoder_configs_are_refused_before_allocation(tmp_path, change, named):
    m = _model("linear").eval()
    save_finetuned(m, tmp_path / "m", {"tasks": ["t"], "classes": ["a", "b", "c"], "preprocessing": {"input_size": 48}})
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["encoder"].update(change)
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=named):
        load_finetuned(tmp_path / "m")


def test_config_that_is_not_an_object_or_not_json_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="JSON object"):
        load_finetuned(tmp_path)
    (tmp_path / "config.json").write_text("[" * 100_000)
    with pytest.raises(UserError, match="nested too deeply|not valid JSON"):
        load_finetuned(tmp_path)
