"""Checks on weight files made *before* anything large is allocated.

A weight file or export folder is untrusted input (downloaded, copied, hand-edited). Its
safetensors header declares every tensor's dtype and shape, and its ``config.json`` (or the
checkpoint's ``config`` metadata) declares the architecture; both are read and checked
here first, so a hostile or broken file ends in one :class:`~mammodino.errors.UserError`
naming the file and the key, never in a multi-gigabyte allocation or a raw library error.

Limits (documented in the README, overridable by environment variable):

* ``MAMMODINO_MAX_TENSOR_BYTES`` (default 1 GiB): one declared tensor. The largest tensor
  of a DINOv2 ViT-g or a 65,536-prototype DINO head is < 70 MB; a ViT-L position
  embedding at a 4,096 px grid is 350 MB.
* ``MAMMODINO_MAX_WEIGHT_BYTES`` (default 16 GiB): all tensors of one file (a ViT-L
  training checkpoint with teacher, student and AdamW moments is ~6.5 GB).
* safetensors headers up to 100 MB (safetensors' own limit), ``config.json`` up to 16 MB.

Loading a file therefore allocates at most its declared tensor bytes (bounded above) plus
the model built from the checked architecture.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from mammodino.errors import UserError

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_CONFIG_BYTES = 16 * 2**20
MAX_DEPTH = 64  # transformer blocks (ViT-g has 40)
MAX_REGISTERS = 64
MAX_PATCH = 64

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def max_tensor_bytes() -> int:
    return _env_int("MAMMODINO_MAX_TENSOR_BYTES", 2**30)


def max_weight_bytes() -> int:
    return _env_int("MAMMODINO_MAX_WEIGHT_BYTES", 16 * 2**30)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r} is not a number of bytes") from None
    if value <= 0:
        raise UserError(f"environment variable {name}={raw!r} must be positive")
    return value


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- files --------------------------------------------------------------------------------
def require_regular_file(path: Path, what: str) -> os.stat_result:
    """``os.stat`` of ``path`` when it is a regular file; a clear error otherwise (a FIFO
    would block the reader forever, a folder gives a raw IsADirectoryError)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (FIFO, device or socket)"
        raise UserError(f"{what} {path} is {kind}")
    return st


def parse_json(text: str | bytes, where: str) -> object:
    """``json.loads`` whose every failure (syntax, nesting too deep, bad UTF-8) is a UserError."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply to be a config") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def read_config_json(path: str | Path) -> dict:
    """An export's ``config.json`` as a dict (regular file, at most 16 MB, a JSON object)."""
    path = Path(path)
    st = require_regular_file(path, "config file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {_gb(st.st_size)}, too large for a config file (limit {_gb(MAX_CONFIG_BYTES)})")
    with open(path, "rb") as fh:
        value = parse_json(fh.read(MAX_CONFIG_BYTES + 1), str(path))
    if not isinstance(value, dict):
        raise UserError(f"{path}: must hold a JSON object (got a JSON {type(value).__name__})")
    return value


def json_metadata(value: str | None, path, key: str = "config") -> dict:
    """A JSON-object metadata entry of a safetensors file (twice-encoded tolerated); {} when absent."""
    if value is None:
        return {}
    where = f"{path}: metadata {key!r}"
    out = parse_json(value, where)
    if isinstance(out, str):  # stored twice-encoded
        out = parse_json(out, where)
    if not isinstance(out, dict):
        raise UserError(f"{where} must be a JSON object (got a JSON {type(out).__name__})")
    return out


# ---- safetensors headers ------------------------------------------------------------------
@dataclass
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass
class WeightHeader:
    """What a safetensors file declares, checked: ``tensors`` name -> :class:`TensorInfo`."""

    path: Path
    metadata: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def shapes(self, prefix: str = "") -> dict[str, tuple[int, ...]]:
        return {k[len(prefix):]: t.shape for k, t in self.tensors.items() if k.startswith(prefix)}

    def dtypes(self, prefix: str = "") -> dict[str, str]:
        return {k[len(prefix):]: t.dtype for k, t in self.tensors.items() if k.startswith(prefix)}


def read_header(path: str | Path, what: str = "weight file") -> WeightHeader:
    """Read and check a safetensors header without touching its tensor data.

    Checks: a regular file; header length within the file and 100 MB; the header a JSON
    object of ``{dtype, shape, data_offsets}`` entries (plus string ``__metadata__``);
    known dtypes, non-negative integer shapes, offsets that match the shape, lie inside the
    file and do not overlap; each tensor within ``MAMMODINO_MAX_TENSOR_BYTES`` and all
    within ``MAMMODINO_MAX_WEIGHT_BYTES``.
    """
    path = Path(path)
    st = require_regular_file(path, what)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise UserError(f"{path}: {st.st_size} bytes, too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        data_size = st.st_size - 8 - n
        if n > MAX_HEADER_BYTES or data_size < 0:
            raise UserError(f"{path}: not a safetensors file (declares a {n:,}-byte header in a "
                            f"{st.st_size:,}-byte file)")
        raw = fh.read(n)
    header = parse_json(raw, f"{path}: safetensors header")
    if not isinstance(header, dict):
        raise UserError(f"{path}: safetensors header is not a JSON object")
    out = WeightHeader(path=path)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise UserError(f"{path}: safetensors '__metadata__' must map strings to strings")
    out.metadata = meta
    limit, total_limit = max_tensor_bytes(), max_weight_bytes()
    spans = []
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) - {"dtype", "shape", "data_offsets"} or len(entry) != 3:
            raise UserError(f"{where}: header entry must hold exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise UserError(f"{where}: unknown dtype {str(dtype)[:40]!r}")
        if not isinstance(shape, list) or len(shape) > 8 or not all(_nonneg_int(s) for s in shape):
            raise UserError(f"{where}: shape {str(shape)[:80]} is not a list of at most 8 non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_nonneg_int(o) for o in offsets)
                and offsets[0] <= offsets[1]):
            raise UserError(f"{where}: data_offsets {str(offsets)[:80]} are not two ascending integers")
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        if nbytes > limit:
            raise UserError(f"{where} declares shape {tuple(shape)} ({dtype}) = {_gb(nbytes)}, past the limit of "
                            f"{_gb(limit)} per tensor (MAMMODINO_MAX_TENSOR_BYTES)")
        if offsets[1] - offsets[0] != nbytes:
            raise UserError(f"{where}: data_offsets span {offsets[1] - offsets[0]:,} bytes but shape "
                            f"{tuple(shape)} ({dtype}) needs {nbytes:,}")
        if offsets[1] > data_size:
            raise UserError(f"{where}: data ends at byte {offsets[1]:,} but the file holds {data_size:,} "
                            "(truncated or damaged)")
        spans.append((offsets[0], offsets[1], name))
        out.tensors[name] = TensorInfo(dtype=dtype, shape=tuple(shape), nbytes=nbytes)
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise UserError(f"{path}: tensors {an!r} and {bn!r} overlap in the file")
    if out.total_bytes > total_limit:
        raise UserError(f"{path}: declares {_gb(out.total_bytes)} of tensors, past the limit of {_gb(total_limit)} "
                        "per file (MAMMODINO_MAX_WEIGHT_BYTES)")
    return out


def _nonneg_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53


def check_tensor_sizes(shapes: dict[str, tuple[int, ...]], itemsize: dict[str, int], where: str) -> None:
    """The size limits of :func:`read_header` for tensors already described (e.g. a ``.pth``
    memory-mapped by torch.load with mmap and weights_only)."""
    limit, total = max_tensor_bytes(), 0
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * itemsize[name]
        if nbytes > limit:
            raise UserError(f"{where}: tensor {name!r} has shape {tuple(shape)} = {_gb(nbytes)}, past the limit of "
                            f"{_gb(limit)} per tensor (MAMMODINO_MAX_TENSOR_BYTES)")
        total += nbytes
    if total > max_weight_bytes():
        raise UserError(f"{where}: {_gb(total)} of tensors, past the limit of {_gb(max_weight_bytes())} per file "
                        "(MAMMODINO_MAX_WEIGHT_BYTES)")


# ---- architectures ------------------------------------------------------------------------
ARCH_KEYS = ("arch", "patch_size", "num_register_tokens", "img_size", "in_chans", "interpolate_antialias")


def check_arch_config(config: dict, where: str, required=("arch", "patch_size", "num_register_tokens", "img_size")) -> dict:
    """The architecture an export's ``config.json`` declares, checked before a model is built.

    Returns the ``build_vit`` arguments. Every key named in ``required`` must be present;
    every present key must have a sane type and range; the position embedding it implies
    must fit the per-tensor limit (a timm ``img_size`` of 160,000 would be 200 GB).
    """
    from mammodino.models.vit import ARCHS

    missing = [k for k in required if k not in config]
    if missing:
        raise UserError(f"{where}: no {', '.join(repr(k) for k in missing)} (the architecture of the weights)")
    out = {}
    if "arch" in config:
        if config["arch"] not in ARCHS:
            raise UserError(f"{where}: 'arch' is {_show(config['arch'])}; one of {', '.join(ARCHS)} expected")
        out["arch"] = config["arch"]
    for key, lo, hi in (("patch_size", 1, MAX_PATCH), ("num_register_tokens", 0, MAX_REGISTERS),
                        ("img_size", 1, 2**20), ("in_chans", 1, 3)):
        if key in config:
            value = config[key]
            if not (isinstance(value, int) and not isinstance(value, bool)) or not lo <= value <= hi:
                raise UserError(f"{where}: {key!r} is {_show(value)}; an integer in [{lo}, {hi}] expected")
            out[key] = value
    if "interpolate_antialias" in config:
        if not isinstance(config["interpolate_antialias"], bool):
            raise UserError(f"{where}: 'interpolate_antialias' must be true or false")
        out["interpolate_antialias"] = config["interpolate_antialias"]
    if "img_size" in out and "patch_size" in out:
        size, patch = out["img_size"], out["patch_size"]
        if size % patch:
            raise UserError(f"{where}: 'img_size' {size} is not a multiple of 'patch_size' {patch}")
        if "arch" in out:
            nbytes = (1 + (size // patch) ** 2) * ARCHS[out["arch"]][0] * 4
            if nbytes > max_tensor_bytes():
                raise UserError(f"{where}: 'img_size' {size} at patch {patch} means a {_gb(nbytes)} position "
                                f"embedding, past the limit of {_gb(max_tensor_bytes())} per tensor "
                                "(MAMMODINO_MAX_TENSOR_BYTES)")
    return out


def meta_state_shapes(**build_kwargs) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of ``build_vit(**build_kwargs)``, built on the meta device (no memory)."""
    import torch

    from mammodino.models.vit import build_vit

    with torch.device("meta"):
        vit = build_vit(**build_kwargs)
    return {k: tuple(v.shape) for k, v in vit.state_dict().items()}


_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def plan_backbone(shapes: dict[str, tuple[int, ...]], where: str, dtypes: dict[str, str] | None = None,
                  config: dict | None = None, optional=("mask_token",)) -> dict:
    """Check a backbone's tensors (our key names; shapes only) and return ``build_vit`` args.

    Every tensor the architecture implies must be present with exactly its shape (compared
    with a model built on the meta device), and no other. Errors name the key:
    a 1-D ``cls_token``, a non-square ``pos_embed`` grid, a zero or non-square patch size,
    a block of the wrong width, a gap in the block numbers, an unknown ViT size.
    """
    from mammodino.models.vit import ARCHS, arch_of

    for key in ("cls_token", "patch_embed.proj.weight", "pos_embed"):
        if key not in shapes:
            raise UserError(f"{where}: no backbone weight {key!r}")
    cls = shapes["cls_token"]
    if len(cls) != 3 or cls[:2] != (1, 1) or cls[2] < 1:
        raise UserError(f"{where}: 'cls_token' has shape {cls}; a ViT's is (1, 1, embed_dim)")
    dim = cls[2]
    proj = shapes["patch_embed.proj.weight"]
    if len(proj) != 4 or proj[0] != dim or proj[2] != proj[3] or not 1 <= proj[2] <= MAX_PATCH or proj[1] not in (1, 3):
        raise UserError(f"{where}: 'patch_embed.proj.weight' has shape {proj}; (embed_dim={dim}, 1 or 3 channels, "
                        f"p, p) with a patch size p in [1, {MAX_PATCH}] expected")
    patch, in_chans = proj[2], proj[1]
    pos = shapes["pos_embed"]
    if len(pos) != 3 or pos[0] != 1 or pos[2] != dim or pos[1] < 2:
        raise UserError(f"{where}: 'pos_embed' has shape {pos}; (1, 1 + grid*grid, embed_dim={dim}) expected")
    side = math.isqrt(pos[1] - 1)
    if side * side != pos[1] - 1:
        raise UserError(f"{where}: 'pos_embed' holds {pos[1] - 1} patch positions, which do not form a square grid")
    blocks = sorted({int(m.group(1)) for k in shapes if (m := _BLOCK.match(k))})
    if not blocks:
        raise UserError(f"{where}: no transformer blocks ('blocks.N.*' weights)")
    if blocks[-1] >= MAX_DEPTH or blocks != list(range(len(blocks))):
        shown = blocks if len(blocks) < 12 else blocks[:5] + ["..."] + blocks[-3:]
        raise UserError(f"{where}: block numbers {shown} are not 0..depth-1 with depth <= {MAX_DEPTH}")
    depth = len(blocks)
    regs = 0
    if "register_tokens" in shapes:
        r = shapes["register_tokens"]
        if len(r) != 3 or r[0] != 1 or r[2] != dim or not 1 <= r[1] <= MAX_REGISTERS:
            raise UserError(f"{where}: 'register_tokens' has shape {r}; (1, R <= {MAX_REGISTERS}, embed_dim={dim}) expected")
        regs = r[1]
    model_cfg = (config or {}).get("model", {}) if isinstance((config or {}).get("model", {}), dict) else {}
    arch = model_cfg.get("arch") if isinstance(model_cfg.get("arch"), str) else None
    if arch not in ARCHS or ARCHS[arch][:2] != (dim, depth):
        arch = arch_of(dim, depth)
    if arch is None:
        raise UserError(f"{where}: embed_dim {dim} / depth {depth} match no ViT preset "
                        f"({', '.join(f'{k} {d}/{n}' for k, (d, n, _) in ARCHS.items())})")
    build = {"arch": arch, "patch_size": patch, "num_register_tokens": regs, "img_size": side * patch,
             "in_chans": in_chans}
    expected = meta_state_shapes(**build)
    wrong = [f"{k}: {shapes[k]} in the file, {v} expected" for k, v in expected.items() if k in shapes and shapes[k] != v]
    missing = [k for k in expected if k not in shapes and k not in optional]
    unexpected = [k for k in shapes if k not in expected]
    if wrong or missing or unexpected:
        parts = []
        if wrong:
            parts.append(f"wrong shapes: {'; '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''}")
        if missing:
            parts.append(f"missing: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(f"unexpected: {', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}")
        raise UserError(f"{where}: backbone weights do not fit a {arch} ViT (patch {patch}, {regs} registers): "
                        + "; ".join(parts))
    if dtypes:
        odd = sorted(k for k, d in dtypes.items() if k in expected and d not in FLOAT_DTYPES)
        if odd:
            raise UserError(f"{where}: weight {odd[0]!r} has dtype {dtypes[odd[0]]}; floating-point weights expected")
    return build


def check_finite(tensors: dict, where: str) -> None:
    """Refuse weights holding NaN or Inf (they would give NaN features silently)."""
    import torch

    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        raise UserError(f"{where}: weights hold NaN/Inf values in {len(bad)} tensor(s) "
                        f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})")
