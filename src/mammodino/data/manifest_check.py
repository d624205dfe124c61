"""Validate a cache manifest before anything is read from it.

A cache is what people copy between machines and colleagues, so ``manifest.csv`` is
untrusted input: a hand-edited or downloaded one may name ``/etc/passwd``,
``../outside/x.npy`` or a FIFO (which would block a reader forever). Every ``image_file`` /
``mask_file`` must therefore be a relative path that resolves (symlinks followed) inside the
cache folder and names a regular ``.npy`` file whose header matches the row (2-D image and
mask for ``ffdm``, ``(Z, H, W)`` for ``dbt``). Columns, kinds and numbers are checked too,
and every problem is collected into one message, so a user fixes the manifest in one go
instead of meeting its errors one crash at a time, hours into a run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from mammodino.errors import UserError

REQUIRED_COLUMNS = ("id", "kind", "status", "image_file", "mask_file")
INT_COLUMNS = ("slices", "height", "width", "cache_height", "cache_width", "flipped")
FLOAT_COLUMNS = ("tissue_fraction",)
KINDS = ("ffdm", "dbt")
QC_VALUES = ("", "pass", "suspect")  # "" : a skipped row, or a cache indexed before quality control
MAX_LISTED = 20


def safe_cache_path(cache_dir: str | Path, rel: str, what: str = "file") -> Path:
    """``cache_dir / rel`` when it is a relative path to a regular file inside the cache;
    a UserError naming the value otherwise. Never opens the file."""
    problem = path_problem(cache_dir, rel)
    if problem:
        raise UserError(f"{Path(cache_dir) / 'manifest.csv'}: {what} {_show(rel)} {problem}")
    return Path(cache_dir) / rel


def path_problem(cache_dir: str | Path, rel: str) -> str:
    """Why ``rel`` may not be read from ``cache_dir`` ('' when it may)."""
    if not rel:
        return "is empty"
    if "\x00" in rel:
        return "contains a NUL byte"
    if os.path.isabs(rel) or rel.startswith(("\\", "~")) or (len(rel) > 1 and rel[1] == ":"):
        return "is an absolute path (must be relative to the cache folder)"
    if ".." in Path(rel).parts:
        return "leaves the cache folder ('..')"
    root = os.path.realpath(cache_dir)
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, full]) != root:
        return "resolves outside the cache folder (a symbolic link?)"
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return "is missing (deleted or never written: re-run `mammodino index`)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    return ""


def npy_header(path: Path) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from an ``.npy`` header, without reading the array."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), dtype


def _show(value: str, limit: int = 80) -> str:
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def row_problems(cache_dir: Path, row: dict, check_files: bool = True) -> list[str]:
    problems = []
    kind = row.get("kind") or ""
    if check_files and row.get("status") == "ok" and kind not in KINDS:
        problems.append(f"kind {_show(kind)} is not one of {', '.join(KINDS)}")
    for key in INT_COLUMNS:
        value = row.get(key)
        if value not in (None, ""):
            try:
                number = float(value)
                if number != int(number) or number < 0:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                problems.append(f"{key} {_show(value)} is not a whole number >= 0")
    for key in FLOAT_COLUMNS:
        value = row.get(key)
        if value not in (None, ""):
            try:
                if not np.isfinite(float(value)):
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"{key} {_show(value)} is not a number")
    qc_value = row.get("qc")
    if qc_value is not None and qc_value not in QC_VALUES:
        problems.append(f"qc {_show(qc_value)} is not one of pass, suspect (or empty)")
    if row.get("status") != "ok" or not check_files:
        return problems
    shapes = {}
    for key in ("image_file", "mask_file"):
        rel = row.get(key) or ""
        problem = path_problem(cache_dir, rel)
        if problem:
            problems.append(f"{key} {_show(rel)} {problem}")
            continue
        try:
            shapes[key] = npy_header(cache_dir / rel)
        except Exception as exc:  # noqa: BLE001 - any damaged header
            problems.append(f"{key} {_show(rel)} is not a readable .npy array ({type(exc).__name__})")
    if len(shapes) == 2 and kind in KINDS:
        (ishape, idtype), (mshape, _) = shapes["image_file"], shapes["mask_file"]
        want = 3 if kind == "dbt" else 2
        if len(ishape) != want:
            problems.append(f"kind {kind} needs a {want}-D image; image_file holds shape {ishape}")
        elif len(mshape) != 2 or tuple(mshape) != tuple(ishape[-2:]):
            problems.append(f"mask_file shape {mshape} does not match image shape {ishape}")
        elif idtype.kind not in "uif" or idtype.fields:
            problems.append(f"image_file holds dtype {idtype}, not grey levels")
        elif kind == "dbt" and row.get("slices") not in (None, "") and _int(row["slices"]) != ishape[0]:
            problems.append(f"slices {row['slices']} but the volume holds {ishape[0]}")
    return problems


def _int(value) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


class ManifestProblems:
    """Collects ``line N: ...`` problems; :meth:`raise_if_any` gives one UserError."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self.count = 0

    def add(self, line_no: int, problems: list[str]) -> None:
        for p in problems:
            self.count += 1
            if len(self.lines) < MAX_LISTED:
                self.lines.append(f"  line {line_no}: {p}")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = f"\n  ... and {self.count - len(self.lines)} more" if self.count > len(self.lines) else ""
        raise UserError(f"{self.path}: {self.count} problem(s) in the manifest; nothing was read from it:\n"
                        + "\n".join(self.lines) + more)


def check_columns(path: Path, header: list[str] | None) -> None:
    if not header:
        raise UserError(f"{path}: empty manifest (no header line)")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path}: not a mammodino manifest: missing column(s) {', '.join(missing)} "
                        f"(it has {', '.join(_show(h, 30) for h in header[:12])})")
