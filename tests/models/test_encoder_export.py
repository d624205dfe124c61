"""Export -> load_encoder round trips, the timm layout, and reading training checkpoints."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import mammodino
from mammodino.cli import main
from mammodino.errors import UserError
from mammodino.models import build_vit
from mammodino.models.dinov2_import import load_dinov2_weights
from mammodino.models.export import export_backbone, to_timm_state_dict
from mammodino.models.loading import backbone_from_checkpoint, load_encoder


def trained_like(seed=0, regs=4):
    torch.manual_seed(seed)
    vit = build_vit("tiny", patch_size=16, img_size=64, num_register_tokens=regs)
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.2)
    return vit.eval()


CFG = {"model": {"arch": "tiny", "patch_size": 16, "num_register_tokens": 4}, "crops": {"global_crop_size": 64}}


def write_training_checkpoint(path, teacher, student):
    tensors = {f"teacher.backbone.{k}": v for k, v in teacher.state_dict().items()}
    tensors.update({f"student.backbone.{k}": v for k, v in student.state_dict().items()})
    tensors["student.dino_head.last_layer.weight"] = torch.zeros(8, 4)
    tensors["dino_loss.center"] = torch.zeros(1, 8)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={"config": json.dumps(CFG), "state": json.dumps({"step": 3})})
    return path


def test_export_and_load_encoder_give_identical_outputs(tmp_path):
    vit = trained_like()
    out = export_backbone(vit, CFG, tmp_path / "enc")
    config = json.loads((out / "config.json").read_text())
    assert config["layout"] == "mammodino" and config["arch"] == "tiny"
    assert (config["patch_size"], config["num_register_tokens"], config["embed_dim"], config["img_size"]) == (16, 4, 192, 64)
    assert config["preprocessing"]["mean"] == 0.5 and config["preprocessing"]["std"] == 0.25
    assert config["mammodino_version"] == mammodino.__version__
    assert config["training_config"] == CFG
    x = torch.randn(2, 1, 64, 96)
    for where in (out, out / "model.safetensors"):
        enc = mammodino.load_encoder(where)
        assert not enc.training
        assert torch.equal(enc(x), vit(x))
        assert torch.equal(enc.get_last_selfattention(x), vit.get_last_selfattention(x))
    assert enc.encoder_config["arch"] == "tiny"


@pytest.mark.parametrize("regs", [4, 0])
def test_timm_layout_has_timms_keys_and_round_trips(tmp_path, regs):
    vit = trained_like(regs=regs)
    sd = to_timm_state_dict(vit)
    assert "mask_token" not in sd
    assert sd["patch_embed.proj.weight"].shape == (192, 3, 16, 16)
    if regs:
        assert {"reg_token", "cls_token", "pos_embed"} <= set(sd) and "register_tokens" not in sd
        assert sd["pos_embed"].shape == (1, 16, 192)  # patch grid only (no_embed_class)
    else:
        assert sd["pos_embed"].shape == (1, 17, 192)

    # timm's forward for this layout, written out: patches + pos, then [cls, reg, patches].
    grey = torch.rand(2, 1, 64, 64)
    rgb = grey.repeat(1, 3, 1, 1)
    x = torch.nn.functional.conv2d(rgb, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=16)
    x = x.flatten(2).transpose(1, 2)
    if regs:
        x = torch.cat([sd["cls_token"].expand(2, -1, -1), sd["reg_token"].expand(2, -1, -1), x + sd["pos_embed"]], 1)
    else:
        x = torch.cat([sd["cls_token"].expand(2, -1, -1), x], 1) + sd["pos_embed"]
    for blk in vit.blocks:
        x = blk(x)
    assert torch.allclose(vit.norm(x)[:, 0], vit(grey), atol=1e-5)

    out = export_backbone(vit, CFG, tmp_path / "timm", timm_layout=True)
    config = json.loads((out / "config.json").read_text())
    assert config["layout"] == "timm" and config["in_chans"] == 3
    enc = load_encoder(out)  # back through our importer
    assert torch.allclose(enc(grey), vit(grey), atol=1e-5)
    fresh = build_vit("tiny", patch_size=16, img_size=64, num_register_tokens=regs)
    report = load_dinov2_weights(fresh, out / "model.safetensors")
    assert report.layout == "timm"
    assert torch.allclose(fresh.eval()(grey), vit(grey), atol=1e-5)


def test_timm_architecture_name_for_real_presets(tmp_path):
    vit = build_vit("small", img_size=28)
    config = json.loads((export_backbone(vit, None, tmp_path / "s", timm_layout=True) / "config.json").read_text())
    assert config["timm"]["architecture"] == "vit_small_patch14_reg4_dinov2"
    assert config["timm"]["pretrained_cfg"]["mean"] == [0.5, 0.5, 0.5]


def test_backbone_from_training_checkpoint(tmp_path):
    teacher, student = trained_like(1), trained_like(2)
    path = write_training_checkpoint(tmp_path / "checkpoint-last.safetensors", teacher, student)
    x = torch.randn(1, 1, 64, 64)
    vit, config = backbone_from_checkpoint(path)
    assert config == CFG and not vit.training
    assert torch.equal(vit(x), teacher(x))
    vit_s, _ = backbone_from_checkpoint(tmp_path, which="student")  # a run folder works too
    assert torch.equal(vit_s(x), student(x))
    assert torch.equal(load_encoder(path)(x), teacher(x))
    with pytest.raises(UserError, match="which must be"):
        backbone_from_checkpoint(path, which="ema")


def test_export_command(tmp_path, capsys):
    teacher, student = trained_like(1), trained_like(2)
    ckpt = write_training_checkpoint(tmp_path / "checkpoint-0000003.safetensors", teacher, student)
    assert main(["export", str(ckpt), str(tmp_path / "enc")]) == 0
    assert "exported the teacher backbone" in capsys.readouterr().out
    x = torch.randn(2, 1, 48, 64)
    assert torch.equal(mammodino.load_encoder(tmp_path / "enc")(x), teacher(x))
    assert main(["export", str(tmp_path), str(tmp_path / "enc-timm"), "--timm", "--which", "student"]) == 0
    with safe_open(str(tmp_path / "enc-timm" / "model.safetensors"), "pt") as fh:
        assert "reg_token" in fh.keys()
    assert torch.allclose(mammodino.load_encoder(tmp_path / "enc-timm")(x), student(x), atol=1e-5)


def test_bad_inputs_are_user_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.safetensors"), str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    save_file({"foo.bar": torch.zeros(1)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(UserError, match="no 'teacher.backbone.\\*' tensors"):
        backbone_from_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(UserError, match="no model.safetensors"):
        load_encoder(tmp_path / "empty-dir-that-does-not-exist")
