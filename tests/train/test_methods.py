"""method: mae | simmim | dinov2 in the one engine: config layering, a few training steps,
bit-exact resume, and an exported encoder that ``embed`` loads."""

import numpy as np
import pytest
import torch

from mammodino.config import load_config
from mammodino.errors import ConfigError
from mammodino.train import checkpoint as ckpt
from mammodino.train.methods import build_model
from mammodino.train.mim_model import MIMModel
from mammodino.train.ssl_model import SSLModel
from mammodino.train.trainer import pretrain

from support.micro import MICRO

MIM = MICRO + ["crops.global_crop_size=64", "mae.decoder_dim=32", "mae.decoder_depth=1", "mae.decoder_heads=2"]


def test_method_layers_set_what_each_method_implies():
    dino = load_config("cpu-tiny", ["method=dinov2"])
    assert dino.crops.sampler == "random" and dino.slice.enabled is False
    assert isinstance(build_model(dino), SSLModel)
    mae = load_config("cpu-tiny", ["method=mae"])
    assert mae.mae.mask_ratio == 0.75 and mae.crops.local_crops_number == 0 and list(mae.optim.betas) == [0.9, 0.95]
    assert mae.mae.decoder_dim == 128                     # cpu-tiny's smaller decoder survives
    assert load_config("vit-base", ["method=mae"]).mae.decoder_depth == 8
    sim = load_config("cpu-tiny", ["method=simmim"])
    assert sim.simmim.mask_ratio == 0.6 and sim.optim.clip_grad == 5.0
    assert isinstance(build_model(sim), MIMModel) and not hasattr(build_model(sim), "teacher")
    # explicit overrides win over the method's file: the tissue-aware variants
    assert load_config("cpu-tiny", ["method=mae", "crops.sampler=tissue"]).crops.sampler == "tissue"
    assert load_config("cpu-tiny").crops.sampler == "tissue"                       # mammodino unchanged
    with pytest.raises(ConfigError, match="method"):
        load_config("cpu-tiny", ["method=byol"])
    with pytest.raises(ConfigError, match="mae.mask_ratio"):
        load_config("cpu-tiny", ["method=mae", "mae.mask_ratio=1.0"])


def _weights(run_dir):
    tensors, meta = ckpt.load_checkpoint(run_dir / ckpt.LAST)
    return {k: v for k, v in tensors.items() if k.startswith("student.")}, meta


@pytest.mark.parametrize("method, sampler", [("mae", "random"), ("simmim", "tissue")])
def test_method_trains_resumes_bit_exactly_and_exports(method, sampler, phantom_cache, tmp_path):
    from mammodino.eval.embedding import embed_cache
    from mammodino.models.loading import load_backbone
    from mammodino.models.export import export_backbone
    from mammodino.models.loading import backbone_from_checkpoint

    cfg = load_config("cpu-tiny", MIM + [f"method={method}", f"crops.sampler={sampler}"])
    full = pretrain(cfg, [phantom_cache], tmp_path / "full", progress=False, echo_config=False)
    assert full["step"] == 6 and np.isfinite(full[f"{method}_loss"]) and full[f"{method}_loss"] > 0
    pretrain(cfg, [phantom_cache], tmp_path / "cut", progress=False, stop_at=3, echo_config=False)
    pretrain(cfg, [phantom_cache], tmp_path / "cut", progress=False, resume=True, echo_config=False)
    a, _ = _weights(tmp_path / "full")
    b, meta = _weights(tmp_path / "cut")
    assert meta["state"]["step"] == 6 and a.keys() == b.keys()
    assert any(k.startswith("student.decoder.") for k in a) and not any(k.startswith("teacher.") for k in a)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    init = build_model(cfg).student.state_dict()                         # the weights did move
    assert any(not torch.equal(init[k], a["student." + k]) for k in init)

    backbone, config = backbone_from_checkpoint(tmp_path / "full")       # which=teacher -> the student
    assert config["method"] == method
    assert torch.equal(backbone.state_dict()["pos_embed"], a["student.backbone.pos_embed"])
    export_backbone(backbone, config, tmp_path / "enc")
    model, _ = load_backbone(tmp_path / "enc")
    feats = embed_cache(model, phantom_cache, resolution=64, progress=False)
    assert feats.features.shape[1] == 2 * backbone.embed_dim and np.isfinite(feats.features).all()


def test_mae_batch_carries_a_constant_visible_set(phantom_cache):
    from mammodino.data.dataset import PretrainDataset, collate

    cfg = load_config("cpu-tiny", MIM + ["method=mae", "crops.sampler=tissue"])
    ds = PretrainDataset([phantom_cache], cfg)
    batch = collate([ds[i] for i in range(4)])
    vis, masks = batch["visible_indices"], batch["masks"]
    assert vis.shape == (8, 4)                               # 16 patches, int(16 * 0.25) visible
    for row in range(8):
        assert not masks[row, vis[row]].any()                # never both seen and scored
    assert (masks.sum(1) > 0).all()
