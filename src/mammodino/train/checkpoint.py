"""Training checkpoints: one safetensors file per checkpoint, written atomically.

Tensors (student, teacher, loss buffers, optimizer moments, RNG) go in the file body; the
step, config and optimizer hyper-parameters go in its JSON metadata. Nothing is pickled, so
a checkpoint from anywhere can be opened safely. A write goes to a temporary file that is
fsynced and then renamed over ``checkpoint-last.safetensors``: a run killed mid-write leaves
the previous checkpoint intact and the partial file is never resumed from.

The metadata also holds a SHA-256 of every tensor (name, dtype, shape, bytes), verified on
load: flipped bytes in the tensor data are a damaged checkpoint, not weights. Model tensors
with NaN or Inf are refused as well (a run cannot continue from them).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mammodino import atomic
from mammodino.errors import UserError
from mammodino.models.weight_checks import read_header

LAST = "checkpoint-last.safetensors"
TMP_SUFFIX = ".partial"
CHECKSUM_KEY = "tensor_sha256"
# tensors that must be finite for a run to continue (optimizer moments and RNG are not checked)
FINITE_PREFIXES = ("student.", "teacher.", "dino_loss.", "ibot_loss.", "model.")  # model.: fine-tunes


class DamagedCheckpoint(UserError):
    """A checkpoint file that cannot be trusted: unreadable, checksum mismatch, non-finite."""


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, raw bytes) of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def non_finite_tensors(tensors: dict[str, torch.Tensor], prefixes=FINITE_PREFIXES) -> list[str]:
    """Names of floating tensors (under ``prefixes``) holding NaN or Inf."""
    bad = []
    for name, t in tensors.items():
        if name.startswith(prefixes) and t.is_floating_point() and not torch.isfinite(t).all():
            bad.append(name)
    return sorted(bad)


def periodic_name(step: int) -> str:
    return f"checkpoint-{step:07d}.safetensors"


def flatten_optimizer(state: dict) -> tuple[dict, dict]:
    """Optimizer state_dict -> (tensors, json-able rest)."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():  # idx: a number, or a parameter name (FSDP)
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.state|{idx}|{key}"] = value
            else:
                scalars[f"{idx}|{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _param_id(idx: str):
    return int(idx) if idx.isdigit() else idx


def unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if not name.startswith("optim.state|"):
            continue
        _, idx, key = name.split("|")
        state.setdefault(_param_id(idx), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        idx, key = name.split("|")
        state.setdefault(_param_id(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict, dict]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {"rng.torch": torch.get_rng_state()}
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def restore_rng(tensors: dict, meta: dict) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if meta.get("numpy"):
        n = meta["numpy"]
        np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    if meta.get("python"):
        p = meta["python"]
        random.setstate((p[0], tuple(p[1]), p[2]))


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Atomically write ``tensors`` + ``meta`` (JSON-able, stored under metadata keys) to ``path``."""
    path = Path(path)
    body = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {key: json.dumps(value) for key, value in meta.items()}
    metadata[CHECKSUM_KEY] = tensor_checksum(body)
    try:
        atomic.atomic_write(path, lambda tmp: save_file(body, str(tmp), metadata=metadata), suffix=TMP_SUFFIX,
                            durable=True)
    except Exception as exc:  # OSError, or safetensors' own error wrapping one (disk full, read-only)
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"cannot write checkpoint {path}: {reason}") from exc
    return path


def load_checkpoint(path: str | Path, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a checkpoint. A damaged file (unreadable, checksum mismatch,
    non-finite weights) is a :class:`DamagedCheckpoint` naming it and what is wrong."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise UserError(f"checkpoint {path} is not a regular file")
    try:  # sizes and structure from the header, before any tensor is allocated
        read_header(path, "checkpoint")
    except UserError as exc:
        raise DamagedCheckpoint(f"checkpoint {path} is damaged or not a mammodino checkpoint ({exc})") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw_meta = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DamagedCheckpoint(f"checkpoint {path} is damaged or not a mammodino checkpoint ({text})") from None
    meta = {}
    for key, value in raw_meta.items():
        if key == CHECKSUM_KEY:
            continue
        try:
            meta[key] = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            meta[key] = value
    if verify:
        stored = raw_meta.get(CHECKSUM_KEY)
        if stored is not None and stored != tensor_checksum(tensors):
            raise DamagedCheckpoint(f"checkpoint {path} is damaged: its tensor data does not match the "
                                    "checksum stored when it was written")
        bad = non_finite_tensors(tensors)
        if bad:
            raise DamagedCheckpoint(f"checkpoint {path} holds NaN/Inf values in {len(bad)} tensor(s) "
                                    f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); a run cannot continue from it")
    return tensors, meta


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """checkpoint-last, then the periodic copies newest first (partial files excluded)."""
    run_dir = Path(run_dir)
    found = [run_dir / LAST] if (run_dir / LAST).exists() else []
    found += sorted(run_dir.glob("checkpoint-[0-9]*.safetensors"), reverse=True)
    return [p for p in found if not p.name.endswith(TMP_SUFFIX)]


def select_checkpoint(run_dir: str | Path) -> tuple[Path | None, dict, dict, list[tuple[Path, str]]]:
    """The newest checkpoint of a run that loads and verifies: ``(path, tensors, meta,
    damaged)`` where ``damaged`` lists ``(path, reason)`` of every newer file that did not."""
    damaged = []
    for candidate in checkpoint_candidates(run_dir):
        try:
            tensors, meta = load_checkpoint(candidate)
        except UserError as exc:
            damaged.append((candidate, str(exc)))
            continue
        if not isinstance(meta.get("state"), dict) or "step" not in meta["state"]:
            damaged.append((candidate, f"checkpoint {candidate} has no training state (not a pretrain checkpoint)"))
            continue
        return candidate, tensors, meta, damaged
    return None, {}, {}, damaged


def find_resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run that loads and verifies (partial files are ignored)."""
    return select_checkpoint(run_dir)[0]


def clean_partials(run_dir: str | Path) -> list[Path]:
    """Remove temporary files left by a killed write; returns what was removed."""
    removed = []
    for tmp in Path(run_dir).glob(f"*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
