"""The ViT backbone: DINOv2 names and token layout, masks, interpolation, attention paths."""

import pytest
import torch
import torch.nn.functional as F

from mammodino.models import build_vit
from mammodino.models.vit import ARCHS, VisionTransformer, resample_patch_pos_embed


def tiny(**kw):
    kw.setdefault("img_size", 32)
    kw.setdefault("patch_size", 16)
    torch.manual_seed(0)
    return build_vit("tiny", **kw).eval()


def small_custom(**kw):
    torch.manual_seed(0)
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_register_tokens=4)
    args.update(kw)
    return VisionTransformer(**args).eval()


def test_presets_match_the_dinov2_shapes():
    assert ARCHS == {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
    vit = build_vit("small")  # ViT-S/14 at 224: 16x16 grid
    assert (vit.embed_dim, len(vit.blocks), vit.num_heads, vit.patch_size) == (384, 12, 6, 14)
    assert vit.pos_embed.shape == (1, 1 + 16 * 16, 384)
    assert vit.register_tokens.shape == (1, 4, 384)
    assert vit.patch_embed.proj.weight.shape == (384, 1, 14, 14)
    # DINOv2 ViT-S/14 has 22.06 M parameters with 3 channels and a 37x37 grid; ours differs
    # exactly by the patch-embedding channels and the position grid.
    n = sum(p.numel() for p in vit.parameters())
    official = 22_056_576 + 4 * 384  # dinov2_vits14 + 4 registers
    assert n == official - 2 * 384 * 14 * 14 - (37 * 37 - 16 * 16) * 384


def test_parameter_names_are_dinov2s():
    names = set(small_custom(depth=1).state_dict())
    block = {f"blocks.0.{n}" for n in (
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
        "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
        "mlp.fc2.bias", "ls2.gamma")}
    top = {"cls_token", "pos_embed", "register_tokens", "mask_token", "patch_embed.proj.weight",
           "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    assert names == block | top


def test_forward_features_layout_on_a_non_square_input():
    vit = tiny()
    x = torch.randn(2, 1, 48, 80)  # 3 x 5 patches
    out = vit.forward_features(x)
    assert out["x_norm_clstoken"].shape == (2, 192)
    assert out["x_norm_regtokens"].shape == (2, 4, 192)
    assert out["x_norm_patchtokens"].shape == (2, 15, 192)
    assert out["x_prenorm"].shape == (2, 1 + 4 + 15, 192)
    normed = vit.norm(out["x_prenorm"])
    assert torch.equal(normed[:, 0], out["x_norm_clstoken"])
    assert torch.equal(normed[:, 5:], out["x_norm_patchtokens"])
    assert torch.equal(vit(x), out["x_norm_clstoken"])
    assert vit(x, is_training=True).keys() == out.keys()


def test_token_order_is_cls_registers_patches_with_positions_on_cls_and_patches_only():
    vit = small_custom()
    with torch.no_grad():
        vit.pos_embed.normal_()
        vit.register_tokens.normal_()
    x = torch.randn(1, 1, 32, 32)
    tokens = vit.prepare_tokens_with_masks(x)
    patches = vit.patch_embed(x)
    assert tokens.shape == (1, 1 + 4 + 16, 32)
    assert torch.allclose(tokens[:, 0], (vit.cls_token + vit.pos_embed[:, :1])[:, 0])
    assert torch.equal(tokens[:, 1:5], vit.register_tokens)
    assert torch.allclose(tokens[:, 5:], patches + vit.pos_embed[:, 1:])


def test_masked_patches_become_the_mask_token():
    vit = small_custom()
    with torch.no_grad():
        vit.mask_token.normal_()
    x = torch.randn(2, 1, 32, 32)
    masks = torch.zeros(2, 16, dtype=torch.bool)
    masks[0, [0, 5]] = True
    masks[1, 15] = True
    tokens = vit.prepare_tokens_with_masks(x, masks)
    patches = vit.patch_embed(x)
    expected = torch.where(masks.unsqueeze(-1), vit.mask_token.unsqueeze(0), patches) + vit.pos_embed[:, 1:]
    assert torch.allclose(tokens[:, 5:], expected)
    # Fully masked: the image content is gone, so two different images give the same output.
    full = torch.ones(2, 16, dtype=torch.bool)
    a = vit.forward_features(torch.randn(2, 1, 32, 32), masks=full)["x_norm_clstoken"]
    b = vit.forward_features(torch.randn(2, 1, 32, 32), masks=full)["x_norm_clstoken"]
    assert torch.allclose(a, b, atol=1e-6)
    # and the mask token receives gradient
    vit.train()
    probe = torch.randn(2, 32)  # (a plain sum of LayerNorm outputs has zero gradient)
    (vit.forward_features(x, masks=masks)["x_norm_clstoken"] * probe).sum().backward()
    assert vit.mask_token.grad is not None and vit.mask_token.grad.abs().sum() > 0


def test_bad_shapes_are_clear_errors():
    vit = small_custom()
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        vit(torch.randn(1, 1, 30, 32))
    with pytest.raises(ValueError, match="masks must be"):
        vit.forward_features(torch.randn(1, 1, 32, 32), masks=torch.zeros(1, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="1 input channel"):
        vit(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown ViT arch"):
        build_vit("huge")


def test_position_embeddings_interpolate_bicubically():
    vit = small_custom()
    assert vit.interpolate_pos_encoding(32, 32) is vit.pos_embed  # native grid: no copy
    pos = vit.interpolate_pos_encoding(48, 64)  # 6 x 8
    assert pos.shape == (1, 1 + 48, 32)
    assert torch.equal(pos[:, 0], vit.pos_embed[:, 0])
    grid = vit.pos_embed[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(6, 8), mode="bicubic", align_corners=False)
    assert torch.allclose(pos[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, 48, 32))
    # a constant field stays constant (bicubic weights sum to 1)
    const = torch.full((1, 16, 3), 0.7)
    assert torch.allclose(resample_patch_pos_embed(const, (4, 4), (7, 3)), torch.full((1, 21, 3), 0.7), atol=1e-6)
    vit(torch.randn(1, 1, 48, 64))  # runs


def test_sdpa_attention_equals_the_explicit_attention():
    vit = small_custom()
    x = torch.randn(2, 1, 32, 48)
    tokens = vit.prepare_tokens_with_masks(x)
    blk = vit.blocks[0]
    h = blk.norm1(tokens)
    w = blk.attn.attention_weights(h)
    assert w.shape == (2, 2, 1 + 4 + 24, 1 + 4 + 24)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 29), atol=1e-6)
    v = blk.attn.qkv(h).reshape(2, 29, 3, 2, 16).permute(2, 0, 3, 1, 4)[2]
    manual = blk.attn.proj((w @ v).transpose(1, 2).reshape(2, 29, 32))
    assert torch.allclose(blk.attn(h), manual, atol=1e-5)


def test_get_last_selfattention_is_the_last_blocks_softmax():
    vit = tiny()
    x = torch.randn(1, 1, 32, 48)
    att = vit.get_last_selfattention(x)
    assert att.shape == (1, 3, 1 + 4 + 6, 1 + 4 + 6)
    assert torch.allclose(att.sum(-1), torch.ones_like(att.sum(-1)), atol=1e-5)
    assert (att >= 0).all()


def test_get_intermediate_layers():
    vit = tiny()
    x = torch.randn(2, 1, 32, 48)
    out = vit.forward_features(x)
    layers = vit.get_intermediate_layers(x, n=4)
    assert len(layers) == 4 and layers[-1].shape == (2, 6, 192)
    assert torch.allclose(layers[-1], out["x_norm_patchtokens"], atol=1e-6)
    pairs = vit.get_intermediate_layers(x, n=[0, 11], return_class_token=True)
    assert len(pairs) == 2 and pairs[1][1].shape == (2, 192)
    assert torch.allclose(pairs[1][1], out["x_norm_clstoken"], atol=1e-6)
    maps = vit.get_intermediate_layers(x, n=1, reshape=True)
    assert maps[0].shape == (2, 192, 2, 3)
    assert torch.allclose(maps[0][:, :, 1, 2], out["x_norm_patchtokens"][:, 5], atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        vit.get_intermediate_layers(x, n=[12])


def test_layerscale_and_linear_stochastic_depth():
    vit = build_vit("tiny", patch_size=16, img_size=32, drop_path_rate=0.3, layerscale_init=1e-5)
    assert all(torch.all(b.ls1.gamma == 1e-5) and torch.all(b.ls2.gamma == 1e-5) for b in vit.blocks)
    rates = [b.sample_drop_ratio for b in vit.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 12).tolist())
    x = torch.randn(4, 1, 32, 32)
    vit.eval()
    assert torch.equal(vit(x), vit(x))
    vit.train()
    torch.manual_seed(1)
    a = vit(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, vit(x))



def test_forward_features_visible_equals_a_model_on_the_kept_patches_only():
    """Running on a subset of patches = running on those tokens alone, each at its true position."""
    import torch

    from mammodino.models.vit import build_vit

    torch.manual_seed(0)
    vit = build_vit("tiny", patch_size=16, num_register_tokens=2, img_size=64, layerscale_init=1.0).eval()
    x = torch.randn(2, 1, 64, 64)
    keep = torch.tensor([[0, 5, 10, 15], [1, 2, 3, 12]])
    out = vit.forward_features_visible(x, keep)
    assert out["x_norm_patchtokens"].shape == (2, 4, 192)
    tokens = vit.prepare_tokens_with_masks(x)
    ref = torch.cat((tokens[:, :3], torch.stack([tokens[i, 3 + keep[i]] for i in range(2)])), 1)
    for blk in vit.blocks:
        ref = blk(ref)
    ref = vit.norm(ref)
    torch.testing.assert_close(out["x_norm_patchtokens"], ref[:, 3:])
    torch.testing.assert_close(out["x_norm_clstoken"], ref[:, 0])
    # all patches kept in order: identical to forward_features
    full = vit.forward_features_visible(x, torch.arange(16).expand(2, -1))
    torch.testing.assert_close(full["x_norm_clstoken"], vit.forward_features(x)["x_norm_clstoken"])


@pytest.mark.parametrize("drop_path,registers", [(0.0, 4), (0.1, 4), (0.4, 0)])
def test_cls_and_patches_equal_forward_features_in_values_and_gradients(drop_path, registers):
    """The training path (last block on CLS + masked patches only) is forward_features, read
    at those tokens: same values, same gradients, also under both stochastic-depth forms
    (0.1: per-sample DropPath in the last block; 0.4: DINOv2's sample-subset trick)."""
    torch.manual_seed(0)
    vit = build_vit("tiny", patch_size=16, img_size=64, drop_path_rate=drop_path, num_register_tokens=registers,
                    layerscale_init=1.0).train()
    x = torch.randn(6, 1, 64, 64)
    masks = torch.rand(6, 16) < 0.3
    rows = masks.flatten().nonzero().flatten()
    w = torch.randn(192, 7)

    def run(full: bool):
        vit.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        if full:
            out = vit.forward_features(x, masks)
            cls, patches = out["x_norm_clstoken"], out["x_norm_patchtokens"].flatten(0, 1)[rows]
        else:
            cls, patches = vit.forward_cls_and_patches(x, masks, rows)
        ((cls @ w).sum() + (patches @ w).square().sum()).backward()
        return cls.detach(), patches.detach(), {n: p.grad.clone() for n, p in vit.named_parameters()}

    cls_a, patches_a, grads_a = run(True)
    cls_b, patches_b, grads_b = run(False)
    assert patches_b.shape == (int(masks.sum()), 192)
    assert torch.allclose(cls_a, cls_b, atol=1e-5) and torch.allclose(patches_a, patches_b, atol=1e-5)
    for name, g in grads_a.items():
        assert torch.allclose(g, grads_b[name], rtol=1e-4, atol=1e-5 * float(g.abs().max())), name


def test_cls_only_pass_skips_the_last_blocks_mlp_for_other_tokens():
    """Local crops need their CLS token only: the last block's projection and MLP then run on
    B rows, which the FLOP counter sees (about 1/depth of the work, less the attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mammodino.models import gemm

    vit = tiny(img_size=64)
    x = torch.randn(4, 1, 64, 64)
    flops = []
    gemm.set_path("aten")  # the counter sees aten matmuls, not oneDNN's
    try:
        for call in (lambda: vit.forward_features(x)["x_norm_clstoken"], lambda: vit.forward_cls_and_patches(x)[0]):
            with FlopCounterMode(display=False) as counter:
                out = call()
            flops.append(counter.get_total_flops())
    finally:
        gemm.set_path(None)
    assert torch.allclose(out, vit.forward_features(x)["x_norm_clstoken"], atol=1e-5)
    saved = 1 - flops[1] / flops[0]
    assert 0.04 < saved < 1 / 12, (flops, saved)
