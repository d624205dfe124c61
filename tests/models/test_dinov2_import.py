"""Importing DINOv2 weights in the official, timm and Hugging Face layouts.

Each test builds a small 3-channel "DINOv2" at an 8x8 patch grid, writes it in one layout,
imports it into a one-channel model at a 6x6 grid, and checks that the import gives the
source model's output for a grey image replicated to RGB.
"""

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mammodino.errors import UserError
from mammodino.models.dinov2_import import load_dinov2_weights
from mammodino.models.vit import VisionTransformer

DIM, DEPTH, HEADS, PATCH = 24, 2, 2, 4


def make(in_chans=1, grid=6, regs=4, depth=DEPTH, dim=DIM, seed=0):
    torch.manual_seed(seed)
    vit = VisionTransformer(img_size=grid * PATCH, patch_size=PATCH, in_chans=in_chans, embed_dim=dim,
                            depth=depth, num_heads=HEADS, num_register_tokens=regs)
    with torch.no_grad():
        for p in vit.parameters():  # every weight distinct, so a wrong mapping shows
            p.normal_(0, 0.3)
    return vit.eval()


def same_output(source, target, size=24, masks=None):
    grey = torch.rand(2, 1, size, size)
    a = source.forward_features(grey.repeat(1, 3, 1, 1), masks=masks)
    b = target.forward_features(grey, masks=masks)
    for key in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens"):
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def official(vit):
    return {k: v.clone() for k, v in vit.state_dict().items()}


def timm_layout(vit):
    """What timm's ``_convert_dinov2`` makes of an official state dict."""
    sd = official(vit)
    sd.pop("mask_token")
    if "register_tokens" in sd:
        sd["reg_token"] = sd.pop("register_tokens")
        sd["cls_token"] = sd.pop("cls_token") + sd["pos_embed"][:, 0]
        sd["pos_embed"] = sd.pop("pos_embed")[:, 1:]
    sd["head.weight"] = torch.zeros(5, DIM)  # a classifier head timm may carry
    return sd


def hf_layout(vit, prefix="", v5=False):
    sd = official(vit)
    out = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.mask_token": sd["mask_token"],
        "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"],
        "layernorm.bias": sd["norm.bias"],
    }
    if "register_tokens" in sd:
        out["embeddings.register_tokens"] = sd["register_tokens"]
    for i in range(len(vit.blocks)):
        b, e = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = sd[f"{b}attn.qkv.{kind}"].chunk(3)
            out[f"{e}attention.attention.query.{kind}"] = q.clone()
            out[f"{e}attention.attention.key.{kind}"] = k.clone()
            out[f"{e}attention.attention.value.{kind}"] = v.clone()
            out[f"{e}attention.output.dense.{kind}"] = sd[f"{b}attn.proj.{kind}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{e}{n}.{kind}"] = sd[f"{b}{n}.{kind}"]
        out[f"{e}layer_scale1.lambda1"] = sd[f"{b}ls1.gamma"]
        out[f"{e}layer_scale2.lambda1"] = sd[f"{b}ls2.gamma"]
    if v5:  # transformers 5 names the attention projections q/k/v/o_proj
        renames = {"attention.attention.query.": "attention.q_proj.", "attention.attention.key.": "attention.k_proj.",
                   "attention.attention.value.": "attention.v_proj.", "attention.output.dense.": "attention.o_proj."}
        for old, new in renames.items():
            out = {k.replace(old, new): v for k, v in out.items()}
    return {prefix + k: v for k, v in out.items()}


def test_official_pth_with_registers(tmp_path):
    source = make(in_chans=3, grid=8)
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(official(source), path)
    target = make(seed=1)
    report = load_dinov2_weights(target, path)
    assert report.layout == "official" and report.prefix == ""
    assert report.missing == [] and report.unexpected == [] and report.ignored == []
    assert torch.equal(target.patch_embed.proj.weight, source.patch_embed.proj.weight.sum(1, keepdim=True))
    assert torch.equal(target.blocks[1].ls2.gamma, source.blocks[1].ls2.gamma)
    assert any("3 input channels summed" in a for a in report.adapted)
    assert any("8x8 -> 6x6" in a for a in report.adapted)
    masks = torch.zeros(2, 36, dtype=torch.bool)
    masks[:, 3:9] = True
    same_output(source, target, masks=masks)  # mask token mapped too


def test_official_training_checkpoint_with_wrapper_prefixes_and_chunked_blocks(tmp_path):
    teacher, student = make(in_chans=3, grid=8, seed=3), make(in_chans=3, grid=8, seed=4)
    chunked = {}
    for k, v in official(teacher).items():
        if k.startswith("blocks."):
            i = int(k.split(".")[1])
            k = f"blocks.{i}.{i}." + k[len(f"blocks.{i}."):]  # blocks.C.N.: one block per chunk
        chunked[k] = v
    assert "blocks.1.1.norm1.weight" in chunked
    ckpt = {"model": {**{f"teacher.backbone.{k}": v for k, v in chunked.items()},
                      **{f"student.backbone.{k}": v for k, v in official(student).items()},
                      "teacher.dino_head.last_layer.weight": torch.zeros(3, 3)},
            "iteration": 12}
    path = tmp_path / "model_0000012.rank_0.pth"
    torch.save(ckpt, path)
    target = make()
    report = load_dinov2_weights(target, path)
    assert report.prefix == "model.teacher.backbone."
    assert "model.teacher.dino_head.last_layer.weight" in report.ignored
    assert any(k.startswith("model.student.backbone.") for k in report.ignored)
    assert "iteration (not a tensor)" in report.ignored
    same_output(teacher, target)


@pytest.mark.parametrize("regs", [4, 0])
def test_timm_layout_safetensors(tmp_path, regs):
    source = make(in_chans=3, grid=8, regs=regs)
    path = tmp_path / "model.safetensors"
    save_file(timm_layout(source), str(path))
    target = make(regs=regs, seed=1)
    mask_before = target.mask_token.clone()
    report = load_dinov2_weights(target, path)
    assert report.layout == "timm"
    assert report.unexpected == ["head.weight"]
    assert report.missing == ["mask_token"]  # timm has none: kept at init, and said so
    assert torch.equal(target.mask_token, mask_before)
    if regs:
        assert any("no_embed_class" in a for a in report.adapted)
        assert torch.equal(target.register_tokens, source.register_tokens)
    same_output(source, target)


@pytest.mark.parametrize("regs, v5", [(4, False), (0, False), (4, True)])
def test_hugging_face_layout(tmp_path, regs, v5):
    source = make(in_chans=3, grid=8, regs=regs)
    path = tmp_path / "model.safetensors"
    hf = hf_layout(source, prefix="dinov2.", v5=v5)
    assert any(("q_proj" in k) == v5 for k in hf)
    save_file({**hf, "classifier.weight": torch.zeros(2, DIM)}, str(path))
    target = make(regs=regs, seed=1)
    report = load_dinov2_weights(target, path)
    assert report.layout == "hf" and report.prefix == "dinov2."
    assert report.ignored == ["classifier.weight"] and report.unexpected == [] and report.missing == []
    assert torch.equal(target.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    masks = torch.zeros(2, 36, dtype=torch.bool)
    masks[0, :10] = True
    same_output(source, target, masks=masks)


def test_every_checkpoint_key_is_accounted_for(tmp_path):
    source = make(in_chans=3, grid=8)
    sd = {**official(source), "fc_norm.weight": torch.ones(DIM)}
    path = tmp_path / "x.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in sd.items()}, "extra": {"w": torch.zeros(1)}}, path)
    report = load_dinov2_weights(make(), path)
    assert report.unexpected == ["teacher.backbone.fc_norm.weight"]
    assert report.ignored == ["extra.w"]
    assert len(report.loaded) + len(report.unexpected) + len(report.ignored) == len(sd) + 1
    text = str(report)
    assert "fc_norm" in text and "extra.w" in text


def test_checkpoint_without_registers_into_a_register_model(tmp_path):
    source = make(in_chans=3, grid=8, regs=0)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official(source), path)
    target = make(regs=4)
    report = load_dinov2_weights(target, path)
    assert report.missing == ["register_tokens"]
    assert any("register_tokens: not in the checkpoint" in a for a in report.adapted)


def test_mismatches_are_errors_that_name_the_key(tmp_path):
    source = make(in_chans=3, grid=8)
    path = tmp_path / "w.pth"
    torch.save(official(source), path)
    with pytest.raises(UserError, match=r"w\.pth: cls_token has shape \(1, 1, 24\) but the model's cls_token is \(1, 1, 32\)"):
        load_dinov2_weights(make(dim=32), path)
    with pytest.raises(UserError, match=r"lacks: blocks\.2\."):
        load_dinov2_weights(make(depth=3), path)
    with pytest.raises(UserError, match=r"weights the model lacks: blocks\.1\."):
        load_dinov2_weights(make(depth=1), path)
    with pytest.raises(UserError, match="register"):
        load_dinov2_weights(make(regs=0), path)
    torch.save({"foo": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="no ViT backbone found"):
        load_dinov2_weights(make(), tmp_path / "other.pth")
    with pytest.raises(UserError, match="does not exist"):
        load_dinov2_weights(make(), tmp_path / "absent.pth")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["torch.save", "raw pickle"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    payload = {"cls_token": torch.zeros(1, 1, DIM), "evil": _Payload(marker)}
    if kind == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match=r"dinov2_vits14_pretrain\.pth: refused"):
        load_dinov2_weights(make(), path)
    assert not marker.exists()
    assert not Path("pwned").exists()
