"""Crafted weight files: what an attacker or a broken tool hands to ``export``, ``embed``,
``attention`` and ``load_encoder``.

Each case is a function ``build(folder) -> path`` that writes one hostile input into an
empty folder and returns the path to give the loader (an export folder, a training
checkpoint or a DINOv2 weight file). Every case must end in one clear
:class:`~mammodino.errors.UserError` naming the file (and the key, where there is one),
before anything large is allocated. Used by ``tests/models/test_weight_checks.py`` and
``benchmarks/faults.py``.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY = {"arch": "tiny", "patch_size": 16, "num_register_tokens": 4, "img_size": 64}
TRAIN_CFG = {"model": {"arch": "tiny", "patch_size": 16, "num_register_tokens": 4}}
NESTED = "[" * 200_000 + "]" * 200_000  # json.loads: RecursionError


def tiny_state(regs: int = 4) -> dict[str, torch.Tensor]:
    from mammodino.models.vit import build_vit

    torch.manual_seed(0)
    vit = build_vit("tiny", patch_size=16, img_size=64, num_register_tokens=regs)
    return {k: v.detach().clone().contiguous() for k, v in vit.state_dict().items()}


def write_export(folder: Path, state=None, config=None, config_text=None, metadata=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state if state is not None else tiny_state(), str(folder / "model.safetensors"),
              metadata=metadata or {"format": "mammodino-encoder", "layout": "mammodino"})
    if config_text is None:
        config_text = json.dumps({"format": "mammodino-encoder", "layout": "mammodino", **TINY,
                                  **(config or {})})
    (folder / "config.json").write_text(config_text)
    return folder


def write_training_checkpoint(path: Path, state=None, config_text=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = state if state is not None else tiny_state()
    tensors = {f"teacher.backbone.{k}": v for k, v in state.items()}
    tensors.update({f"student.backbone.{k}": v.clone() for k, v in state.items()})
    save_file(tensors, str(path), metadata={"config": config_text if config_text is not None else json.dumps(TRAIN_CFG),
                                            "state": json.dumps({"step": 1})})
    return path


def write_raw_safetensors(path: Path, header: dict | bytes, data_bytes: int, header_len: int | None = None) -> Path:
    """A safetensors file with a hand-written header and ``data_bytes`` of (sparse) data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw) if header_len is None else header_len))
        fh.write(raw)
        fh.truncate(8 + len(raw) + data_bytes)  # sparse: no disk, no memory
    return path


def _declared(shapes: dict[str, list[int]]) -> tuple[dict, int]:
    header, offset = {"__metadata__": {"format": "mammodino-encoder", "layout": "mammodino"}}, 0
    for name, shape in shapes.items():
        n = 4
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    return header, offset


def _with(**changes):
    state = tiny_state()
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    return state


# ---- the cases ----------------------------------------------------------------------------
def huge_pos_embed(d: Path) -> Path:
    """An export whose header declares a 3.2 GB pos_embed (sparse file)."""
    shapes = {k: list(v.shape) for k, v in tiny_state().items()}
    shapes["pos_embed"] = [1, 4_166_667, 192]  # 3.2 GB of float32
    header, n = _declared(shapes)
    d.mkdir(parents=True, exist_ok=True)
    write_raw_safetensors(d / "model.safetensors", header, n)
    (d / "config.json").write_text(json.dumps({"format": "mammodino-encoder", "layout": "mammodino", **TINY}))
    return d


def huge_tensor_dinov2(d: Path) -> Path:
    """A DINOv2-style .safetensors whose head declares a 2^31-element tensor."""
    shapes = {k: list(v.shape) for k, v in tiny_state().items()}
    shapes["head.weight"] = [65536, 32768]
    header, n = _declared(shapes)
    d.mkdir(parents=True, exist_ok=True)
    return write_raw_safetensors(d / "dinov2_vits14.safetensors", header, n)


def timm_img_size_160000(d: Path) -> Path:
    from mammodino.models.export import to_timm_state_dict
    from mammodino.models.vit import build_vit

    vit = build_vit("tiny", patch_size=16, img_size=64)
    state = {k: v.contiguous() for k, v in to_timm_state_dict(vit).items()}
    cfg = {"format": "mammodino-encoder", "layout": "timm", **TINY, "img_size": 160_000, "in_chans": 3}
    return write_export(d, state=state, config_text=json.dumps(cfg), metadata={"format": "mammodino-encoder", "layout": "timm"})


def config_img_size_160000(d: Path) -> Path:
    return write_export(d, config={"img_size": 160_000})


def nested_metadata_checkpoint(d: Path) -> Path:
    return write_training_checkpoint(d / "checkpoint-last.safetensors", config_text=NESTED)


def nested_config_json(d: Path) -> Path:
    return write_export(d, config_text=NESTED)


def non_square_pos_embed(d: Path) -> Path:
    return write_export(d, state=_with(pos_embed=torch.zeros(1, 1 + 17, 192)))


def non_square_pos_embed_checkpoint(d: Path) -> Path:
    return write_training_checkpoint(d / "checkpoint-last.safetensors", state=_with(pos_embed=torch.zeros(1, 1 + 17, 192)))


def wrong_block_shape(d: Path) -> Path:
    return write_export(d, state=_with(blocks__0__attn__qkv__weight=torch.zeros(10, 192)))


def wrong_block_shape_checkpoint(d: Path) -> Path:
    return write_training_checkpoint(d / "checkpoint-last.safetensors",
                                     state=_with(blocks__3__mlp__fc1__weight=torch.zeros(700, 192)))


def cls_token_1d(d: Path) -> Path:
    return write_export(d, state=_with(cls_token=torch.zeros(192)))


def cls_token_1d_checkpoint(d: Path) -> Path:
    return write_training_checkpoint(d / "checkpoint-last.safetensors", state=_with(cls_token=torch.zeros(192)))


def patch_size_zero(d: Path) -> Path:
    return write_export(d, state=_with(patch_embed__proj__weight=torch.zeros(192, 1, 0, 0)),
                        config={"patch_size": 0})


def patch_size_zero_checkpoint(d: Path) -> Path:
    return write_training_checkpoint(d / "checkpoint-last.safetensors",
                                     state=_with(patch_embed__proj__weight=torch.zeros(192, 1, 0, 0)))


def config_patch_size_zero(d: Path) -> Path:
    return write_export(d, config={"patch_size": 0})


def config_patch_size_string(d: Path) -> Path:
    return write_export(d, config={"patch_size": "16"})


def config_negative_registers(d: Path) -> Path:
    return write_export(d, config={"num_register_tokens": -1})


def malformed_config_json(d: Path) -> Path:
    return write_export(d, config_text='{"arch": "tiny", "patch_size": 16,')


def list_config_json(d: Path) -> Path:
    return write_export(d, config_text="[1, 2, 3]")


def binary_config_json(d: Path) -> Path:
    write_export(d)
    (d / "config.json").write_bytes(b"\xff\xfe\x00\x01garbage\x00")
    return d


def config_json_directory(d: Path) -> Path:
    write_export(d)
    os.remove(d / "config.json")
    (d / "config.json").mkdir()
    return d


def config_json_fifo(d: Path) -> Path:
    write_export(d)
    os.remove(d / "config.json")
    os.mkfifo(d / "config.json")
    return d


def huge_config_json(d: Path) -> Path:
    write_export(d)
    with open(d / "config.json", "wb") as fh:
        fh.write(b'{"arch": "tiny", "x": "')
        fh.truncate(600 * 2**20)  # 600 MB of NULs: sparse
    return d


def timm_without_arch(d: Path) -> Path:
    from mammodino.models.export import to_timm_state_dict
    from mammodino.models.vit import build_vit

    vit = build_vit("tiny", patch_size=16, img_size=64)
    state = {k: v.contiguous() for k, v in to_timm_state_dict(vit).items()}
    cfg = {"format": "mammodino-encoder", "layout": "timm", "patch_size": 16, "num_register_tokens": 4, "img_size": 64}
    return write_export(d, state=state, config_text=json.dumps(cfg), metadata={"format": "mammodino-encoder", "layout": "timm"})


def timm_unknown_arch(d: Path) -> Path:
    from mammodino.models.export import to_timm_state_dict
    from mammodino.models.vit import build_vit

    vit = build_vit("tiny", patch_size=16, img_size=64)
    state = {k: v.contiguous() for k, v in to_timm_state_dict(vit).items()}
    cfg = {"format": "mammodino-encoder", "layout": "timm", **TINY, "arch": "giant"}
    return write_export(d, state=state, config_text=json.dumps(cfg), metadata={"format": "mammodino-encoder", "layout": "timm"})


def header_length_huge(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return write_raw_safetensors(d / "model.safetensors", b"{}", 0, header_len=2**62)


def header_not_json(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    write_raw_safetensors(d / "model.safetensors", b"{not json at all", 0)
    (d / "config.json").write_text(json.dumps(TINY))
    return d


def header_nested(d: Path) -> Path:
    """Nesting in the safetensors header itself (not in a metadata string)."""
    d.mkdir(parents=True, exist_ok=True)
    body = b'{"__metadata__": {"a": "b"}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    write_raw_safetensors(d / "model.safetensors", body, 0)
    (d / "config.json").write_text(json.dumps(TINY))
    return d


def header_bad_offsets(d: Path) -> Path:
    """Declared data past the end of the file."""
    shapes = {k: list(v.shape) for k, v in tiny_state().items()}
    header, n = _declared(shapes)
    d.mkdir(parents=True, exist_ok=True)
    write_raw_safetensors(d / "model.safetensors", header, n // 2)
    (d / "config.json").write_text(json.dumps({"format": "mammodino-encoder", "layout": "mammodino", **TINY}))
    return d


def header_unknown_dtype(d: Path) -> Path:
    shapes = {k: list(v.shape) for k, v in tiny_state().items()}
    header, n = _declared(shapes)
    header["cls_token"]["dtype"] = "Q99"
    d.mkdir(parents=True, exist_ok=True)
    write_raw_safetensors(d / "model.safetensors", header, n)
    (d / "config.json").write_text(json.dumps({"format": "mammodino-encoder", "layout": "mammodino", **TINY}))
    return d


def zero_byte_weights(d: Path) -> Path:
    write_export(d)
    (d / "model.safetensors").write_bytes(b"")
    return d


def weights_directory(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.safetensors").mkdir()
    (d / "config.json").write_text(json.dumps(TINY))
    return d


def weights_fifo(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    os.mkfifo(d / "model.safetensors")
    (d / "config.json").write_text(json.dumps(TINY))
    return d


def nan_weights(d: Path) -> Path:
    state = tiny_state()
    state["blocks.0.mlp.fc1.weight"][0, 0] = float("nan")
    return write_export(d, state=state)


def int_dtype_weights(d: Path) -> Path:
    state = tiny_state()
    state["cls_token"] = torch.zeros(1, 1, 192, dtype=torch.int64)
    return write_export(d, state=state)


def missing_block(d: Path) -> Path:
    return write_export(d, state=_with(blocks__5__attn__qkv__weight=None))


def deep_model_claim(d: Path) -> Path:
    """A block index of 10^9 (depth inferred from key names)."""
    state = tiny_state()
    state["blocks.999999999.norm1.weight"] = torch.zeros(192)
    return write_export(d, state=state)


def dinov2_nested_pickle_free(d: Path) -> Path:
    """A .pth that is not a zip/pickle at all."""
    d.mkdir(parents=True, exist_ok=True)
    p = d / "dinov2_vits14_pretrain.pth"
    p.write_bytes(b"PK\x03\x04" + os.urandom(200))
    return p


def dinov2_huge_pos_embed(d: Path) -> Path:
    """A DINOv2-style file (no config.json) whose pos_embed claims a 4000x4000 grid."""
    shapes = {k: list(v.shape) for k, v in tiny_state().items()}
    shapes["pos_embed"] = [1, 1 + 4000 * 4000, 192]
    header, n = _declared(shapes)
    header["__metadata__"] = {}
    d.mkdir(parents=True, exist_ok=True)
    return write_raw_safetensors(d / "dinov2_vitt16.safetensors", header, n)


CASES = {name: fn for name, fn in list(globals().items())
         if callable(fn) and getattr(fn, "__module__", None) == __name__ and not name.startswith("_")
         and name not in {"tiny_state", "write_export", "write_training_checkpoint", "write_raw_safetensors"}}
