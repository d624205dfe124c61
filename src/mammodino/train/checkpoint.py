"""Training checkpoints: one safetensors file per checkpoint, written atomically.

Tensors (student, teacher, loss buffers, optimizer moments, RNG) go in the file body; the
step, config and optimizer hyper-parameters go in its JSON metadata. Nothing is pickled, so
a checkpoint from anywhere can be opened safely. A write goes to a temporary file that is
fsynced and then renamed over ``checkpoint-last.safetensors``: a run killed mid-write leaves
the previous checkpoint intact and the partial file is never resumed from.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mammodino.errors import UserError

LAST = "checkpoint-last.safetensors"
TMP_SUFFIX = ".partial"


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


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Atomically write ``tensors`` + ``meta`` (JSON-able, stored under metadata keys) to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    body = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {key: json.dumps(value) for key, value in meta.items()}
    try:
        save_file(body, str(tmp), metadata=metadata)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except Exception as exc:  # OSError, or safetensors' own error wrapping one (disk full, read-only)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"cannot write checkpoint {path}: {reason}") from exc
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a checkpoint; a damaged file is a UserError naming it."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw_meta = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except FileNotFoundError as exc:
        raise UserError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserError(f"checkpoint {path} is damaged or not a mammodino checkpoint ({exc})") from exc
    meta = {}
    for key, value in raw_meta.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return tensors, meta


def find_resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run that opens cleanly (partial files are ignored)."""
    run_dir = Path(run_dir)
    candidates = [run_dir / LAST] + sorted(run_dir.glob("checkpoint-[0-9]*.safetensors"), reverse=True)
    for candidate in candidates:
        if not candidate.exists() or candidate.name.endswith(TMP_SUFFIX):
            continue
        try:
            with safe_open(str(candidate), framework="pt", device="cpu") as fh:
                if "state" in (fh.metadata() or {}):
                    return candidate
        except Exception:
            continue
    return None


def clean_partials(run_dir: str | Path) -> list[Path]:
    """Remove temporary files left by a killed write; returns what was removed."""
    removed = []
    for tmp in Path(run_dir).glob(f"*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
