"""Against the real timm / transformers packages, when installed (they are not dependencies).

Skipped unless ``timm`` / ``transformers`` import. Verified by hand with timm 1.0.31 and
transformers 4.57.6 and 5.24.0.
"""

import pytest
import torch
from safetensors.torch import save_file

from mammodino.models.dinov2_import import load_dinov2_weights
from mammodino.models.export import export_backbone
from mammodino.models.vit import VisionTransformer, build_vit


def _randomise(module, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.05)
    return module.eval()


def test_timm_loads_our_timm_export_and_we_load_timms_weights(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import load_file

    ours = _randomise(build_vit("tiny", img_size=56))
    export_backbone(ours, None, tmp_path / "enc", timm_layout=True)
    tm = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, num_classes=0, img_size=56,
                           embed_dim=192, num_heads=3).eval()
    sd = timm.models.vision_transformer.checkpoint_filter_fn(load_file(str(tmp_path / "enc" / "model.safetensors")), tm)
    tm.load_state_dict(sd, strict=True)
    x = torch.randn(2, 1, 56, 56)
    with torch.no_grad():
        assert torch.allclose(tm.forward_features(x.repeat(1, 3, 1, 1))[:, 0], ours(x), atol=1e-5)

    tm2 = _randomise(timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, num_classes=0,
                                       img_size=56, embed_dim=192, num_heads=3), seed=1)
    save_file({k: v.contiguous() for k, v in tm2.state_dict().items()}, str(tmp_path / "timm.safetensors"))
    ours2 = build_vit("tiny", img_size=56)
    assert load_dinov2_weights(ours2, tmp_path / "timm.safetensors").layout == "timm"
    with torch.no_grad():
        assert torch.allclose(tm2.forward_features(x.repeat(1, 3, 1, 1))[:, 0], ours2.eval()(x), atol=1e-5)


@pytest.mark.parametrize("regs", [4, 0])
def test_hugging_face_dinov2_imports_to_the_same_outputs(tmp_path, regs):
    transformers = pytest.importorskip("transformers")
    kw = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192, patch_size=14,
              image_size=56, layerscale_value=1e-5)
    if regs:
        hf = transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **kw))
    else:
        hf = transformers.Dinov2Model(transformers.Dinov2Config(**kw))
    hf = _randomise(hf)
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(tmp_path / "model.safetensors"))
    ours = VisionTransformer(img_size=56, patch_size=14, embed_dim=48, depth=2, num_heads=2, num_register_tokens=regs)
    assert load_dinov2_weights(ours, tmp_path / "model.safetensors").layout == "hf"
    x = torch.randn(1, 1, 56, 56)
    masks = torch.zeros(1, 16, dtype=torch.bool)
    masks[0, 3:9] = True
    with torch.no_grad():
        a = hf(pixel_values=x.repeat(1, 3, 1, 1), bool_masked_pos=masks).last_hidden_state
        b = ours.eval().forward_features(x, masks=masks)
    assert torch.allclose(a[:, 0], b["x_norm_clstoken"], atol=1e-5)
    assert torch.allclose(a[:, 1 + regs :], b["x_norm_patchtokens"], atol=1e-5)
