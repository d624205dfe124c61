"""Hostile weight files end in one clear error naming the file and key, before allocation."""

import contextlib
import io

import pytest
import torch

import mammodino
from mammodino.cli import main
from mammodino.errors import UserError
from mammodino.models import weight_checks
from mammodino.models.loading import backbone_from_checkpoint, load_backbone
from support import weight_cases as wc

# what the message must name, besides the file
EXPECT = {
    "huge_pos_embed": "pos_embed", "huge_tensor_dinov2": "head.weight", "timm_img_size_160000": "img_size",
    "config_img_size_160000": "img_size", "nested_metadata_checkpoint": "nested too deeply",
    "nested_config_json": "nested too deeply", "non_square_pos_embed": "square grid",
    "non_square_pos_embed_checkpoint": "square grid", "wrong_block_shape": "blocks.0.attn.qkv.weight",
    "wrong_block_shape_checkpoint": "blocks.3.mlp.fc1.weight", "cls_token_1d": "cls_token",
    "cls_token_1d_checkpoint": "cls_token", "patch_size_zero": "patch_size",
    "patch_size_zero_checkpoint": "patch_embed.proj.weight", "config_patch_size_zero": "patch_size",
    "config_patch_size_string": "patch_size", "config_negative_registers": "num_register_tokens",
    "malformed_config_json": "not valid JSON", "list_config_json": "JSON object", "binary_config_json": "UTF-8",
    "config_json_directory": "folder", "config_json_fifo": "not a regular file", "huge_config_json": "too large",
    "timm_without_arch": "'arch'", "timm_unknown_arch": "giant", "header_length_huge": "header",
    "header_not_json": "header", "header_nested": "nested too deeply", "header_bad_offsets": "truncated",
    "header_unknown_dtype": "Q99", "zero_byte_weights": "too short", "weights_directory": "no model.safetensors",
    "weights_fifo": "no model.safetensors", "nan_weights": "NaN", "int_dtype_weights": "dtype",
    "missing_block": "blocks.5.attn.qkv.weight", "deep_model_claim": "999999999",
    "dinov2_nested_pickle_free": "", "dinov2_huge_pos_embed": "pos_embed",
}


def test_every_case_has_an_expectation():
    assert set(EXPECT) == set(wc.CASES)


@pytest.mark.parametrize("name", sorted(wc.CASES))
def test_load_encoder_and_load_backbone_refuse_with_a_clear_error(tmp_path, name):
    path = wc.CASES[name](tmp_path / "case")
    for load in (mammodino.load_encoder, lambda p: load_backbone(p)):
        with pytest.raises(UserError) as err:
            load(path)
        text = str(err.value)
        assert str(tmp_path / "case") in text, text
        assert EXPECT[name] in text, text
        assert len(text) < 700


@pytest.mark.parametrize("name", ["nested_metadata_checkpoint", "non_square_pos_embed_checkpoint", "cls_token_1d_checkpoint",
                                  "patch_size_zero_checkpoint", "wrong_block_shape_checkpoint"])
def test_crafted_checkpoints_through_export_embed_attention_cli(tmp_path, name):
    ckpt = wc.CASES[name](tmp_path / "case")
    cache = tmp_path / "cache"  # the weights are checked before the cache is opened
    runs = {
        "export": ["export", str(ckpt), str(tmp_path / "enc")],
        "embed": ["embed", str(ckpt), str(cache), str(tmp_path / "f.npz"), "--no-progress"],
        "attention": ["attention", str(ckpt), "x", "--cache", str(cache), "--out", str(tmp_path / "att")],
    }
    for cmd, argv in runs.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        assert rc == 2, (cmd, err.getvalue())
        assert err.getvalue().startswith("error: ") and str(ckpt) in err.getvalue(), (cmd, err.getvalue())
    assert not (tmp_path / "enc").exists() and not (tmp_path / "f.npz").exists()


def test_backbone_from_checkpoint_reads_no_tensor_before_the_shapes_pass(tmp_path, monkeypatch):
    path = wc.cls_token_1d_checkpoint(tmp_path)
    import safetensors

    def refuse(*a, **k):
        raise AssertionError("tensor data opened before the header was checked")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    with pytest.raises(UserError, match="cls_token"):
        backbone_from_checkpoint(path)


def test_limits_are_set_by_environment(tmp_path, monkeypatch):
    enc = wc.write_export(tmp_path / "enc")
    assert mammodino.load_encoder(enc).arch == "tiny"
    monkeypatch.setenv("MAMMODINO_MAX_TENSOR_BYTES", str(200_000))  # pos_embed of tiny@64: 17 x 192 x 4 = 13 KB
    with pytest.raises(UserError, match="MAMMODINO_MAX_TENSOR_BYTES"):
        mammodino.load_encoder(enc)  # blocks' mlp weights are 590 KB
    monkeypatch.setenv("MAMMODINO_MAX_TENSOR_BYTES", "lots")
    with pytest.raises(UserError, match="MAMMODINO_MAX_TENSOR_BYTES"):
        mammodino.load_encoder(enc)
    monkeypatch.delenv("MAMMODINO_MAX_TENSOR_BYTES")
    monkeypatch.setenv("MAMMODINO_MAX_WEIGHT_BYTES", str(1_000_000))
    with pytest.raises(UserError, match="MAMMODINO_MAX_WEIGHT_BYTES"):
        mammodino.load_encoder(enc)


def test_read_header_agrees_with_safetensors(tmp_path):
    from safetensors import safe_open

    enc = wc.write_export(tmp_path / "enc")
    header = weight_checks.read_header(enc / "model.safetensors")
    with safe_open(str(enc / "model.safetensors"), framework="pt") as fh:
        assert set(header.tensors) == set(fh.keys())
        for k in fh.keys():
            assert header.tensors[k].shape == tuple(fh.get_slice(k).get_shape())
        assert header.metadata == fh.metadata()
    assert header.total_bytes == sum(v.numel() * 4 for v in wc.tiny_state().values())


def test_plan_backbone_matches_the_model_it_describes():
    from mammodino.models.vit import build_vit

    for arch, patch, regs, size in (("tiny", 16, 4, 64), ("small", 14, 0, 224), ("base", 14, 4, 518)):
        with torch.device("meta"):
            vit = build_vit(arch, patch_size=patch, num_register_tokens=regs, img_size=size)
        shapes = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
        assert weight_checks.plan_backbone(shapes, "x") == {"arch": arch, "patch_size": patch, "num_register_tokens": regs,
                                                           "img_size": size, "in_chans": 1}


def test_parse_json_never_raises_raw_errors():
    for text in (wc.NESTED, "{", b"\xff", '{"a": NaN'):
        try:
            weight_checks.parse_json(text, "where")
        except UserError as exc:
            assert str(exc).startswith("where: ")
    assert weight_checks.parse_json('{"a": [1]}', "w") == {"a": [1]}


def test_a_damaged_header_makes_a_training_checkpoint_damaged(tmp_path):
    from mammodino.train.checkpoint import DamagedCheckpoint, load_checkpoint

    shapes = {"student.backbone.pos_embed": [1, 300_000_000, 4]}
    header, n = wc._declared(shapes)
    path = wc.write_raw_safetensors(tmp_path / "checkpoint-last.safetensors", header, n)
    with pytest.raises(DamagedCheckpoint, match="MAMMODINO_MAX_TENSOR_BYTES"):
        load_checkpoint(path)
