"""The one model loader (:mod:`mammodino.models.loading`): every source kind gives the same
weights, and the description it returns rebuilds the model."""

import json

import pytest
import torch
from safetensors.torch import save_file

from mammodino.errors import UserError
from mammodino.models.export import export_backbone
from mammodino.models.loading import load_backbone, source_kind
from mammodino.models.vit import ARCHS, arch_of


def test_load_backbone_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_backbone(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="random-init"):
        load_backbone(None)


def _trained_like(seed):
    from mammodino.models.vit import build_vit

    torch.manual_seed(seed)
    vit = build_vit("tiny", patch_size=16, img_size=64, num_register_tokens=4)
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.2)
    return vit.eval()


def test_every_checkpoint_kind_loads_the_same_weights(tmp_path):
    """Training checkpoint (teacher/student, file or run folder), exported encoder, DINOv2 file."""
    teacher, student = _trained_like(1), _trained_like(2)
    cfg = {"model": {"arch": "tiny", "patch_size": 16, "num_register_tokens": 4}}
    run = tmp_path / "run"
    run.mkdir()
    tensors = {f"teacher.backbone.{k}": v for k, v in teacher.state_dict().items()}
    tensors.update({f"student.backbone.{k}": v for k, v in student.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(run / "checkpoint-last.safetensors"),
              metadata={"config": json.dumps(cfg), "state": json.dumps({"step": 1})})
    export_backbone(teacher, cfg, tmp_path / "enc")
    official = {k: v.clone() for k, v in teacher.state_dict().items()}
    official["patch_embed.proj.weight"] = official["patch_embed.proj.weight"].repeat(1, 3, 1, 1) / 3  # RGB
    torch.save(official, tmp_path / "dinov2_like.pth")

    x = torch.randn(1, 1, 64, 64)
    want = teacher(x)
    for source, kw in ((run, {}), (run / "checkpoint-last.safetensors", {}), (tmp_path / "enc", {}),
                       (tmp_path / "dinov2_like.pth", {})):
        model, info = load_backbone(source, **kw)
        assert torch.allclose(model(x), want, atol=1e-4), (source, info["source"])
    model, info = load_backbone(run, which="student")
    assert torch.allclose(model(x), student(x), atol=1e-5) and info["which"] == "student"
    assert load_backbone(tmp_path / "dinov2_like.pth")[1]["source"] == "dinov2-import"
    assert load_backbone(tmp_path / "enc")[1]["source"] == "exported-encoder"
    assert [source_kind(p) for p in (run, run / "checkpoint-last.safetensors", tmp_path / "enc",
                                     tmp_path / "enc" / "model.safetensors", tmp_path / "dinov2_like.pth")] == [
        "training-checkpoint", "training-checkpoint", "exported-encoder", "exported-encoder", "dinov2-import"]


def test_a_random_init_description_rebuilds_the_same_model():
    model, info = load_backbone(random_init=True, arch="tiny", patch_size=16, seed=3, img_size=64)
    again, _ = load_backbone(random_init=True, **{k: v for k, v in info.items() if k != "source"})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other, _ = load_backbone(random_init=True, arch="tiny", patch_size=16, seed=4, img_size=64)
    assert not torch.equal(model.cls_token, other.cls_token)


def test_arch_of_names_presets_by_shape_with_or_without_heads():
    for name, (dim, depth, heads) in ARCHS.items():
        assert arch_of(dim, depth, heads) == name and arch_of(dim, depth) == name
    assert arch_of(192, 12, 4) is None and arch_of(200, 12) is None


def test_a_dinov2_weight_file_is_read_once(tmp_path, monkeypatch):
    """The model is sized from the file and loaded from the same tensors: a multi-GB ViT-g
    file is not read (and converted from pickle) twice."""
    from mammodino.models import dinov2_import, loading

    torch.save(_trained_like(5).state_dict(), tmp_path / "dinov2_like.pth")
    reads = []
    real = dinov2_import.read_weights

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(loading, "read_weights", counting)
    monkeypatch.setattr(dinov2_import, "read_weights", counting)
    model, info = load_backbone(tmp_path / "dinov2_like.pth")
    assert info["source"] == "dinov2-import" and len(reads) == 1
