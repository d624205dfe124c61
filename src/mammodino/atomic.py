"""Atomic file writes: a file under its final name is always whole.

Every file mammodino writes that a kill could cut in half (checkpoints, cached arrays,
manifests' companions, exports, features, results, reports, configs) is written to a
temporary name in the same folder and renamed over the final name (``os.replace`` is atomic
on one file system). A reader, or a run resumed after SIGKILL, sees the old file or the new
one, never a torn one; a failed write removes its temporary file and re-raises.

``durable=True`` adds ``fsync`` of the file before the rename and of the folder after it, so
the rename survives a power cut too (checkpoints: "a partial file is never latest").
``mode`` sets the permission bits of the temporary file before it gets its name (an export is
meant to be shared: safetensors itself creates 0600 files).

Example:
    >>> write_text(run / "config.yaml", text)
    >>> atomic_write(path, lambda tmp: np.save(tmp, arr, allow_pickle=False), suffix=f".tmp-{os.getpid()}")
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

PARTIAL = ".partial"


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
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


def atomic_write(path: str | Path, write: Callable[[Path], object], *, suffix: str = PARTIAL,
                 durable: bool = False, mode: int | None = None) -> Path:
    """``write(tmp)`` to ``path + suffix``, then rename it to ``path``; returns ``path``.

    ``suffix`` names the temporary file (keep the real extension at its end where the writer
    picks the format from it, e.g. ``".tmp.png"`` for cv2). The folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    if durable:
        fsync_folder(path.parent)
    return path


def write_text(path: str | Path, text: str, **kw) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), **kw)


def write_bytes(path: str | Path, data: bytes, **kw) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), **kw)


def write_json(path: str | Path, obj, indent: int | None = 1, **kw) -> Path:
    """:func:`atomic_write` of ``json.dumps(obj, indent=indent, default=str)`` + newline."""
    return write_text(path, json.dumps(obj, indent=indent, default=str) + "\n", **kw)


def umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
