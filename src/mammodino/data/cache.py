"""The on-disk cache that ``mammodino index`` writes and everything after it reads.

Layout of a cache folder ``OUT``::

    OUT/manifest.csv              one row per source image or DBT volume (see MANIFEST_COLUMNS)
    OUT/images/<ab>/<id>.npy      uint16, (H, W) for FFDM or (Z, H, W) for DBT; 0..65535 where
                                  65535 is the brightest (densest) tissue, MONOCHROME2 sense,
                                  cropped to the breast box (+ margin), chest wall on the LEFT,
                                  long side resized to ``--size`` (default 1024)
    OUT/masks/<ab>/<id>.npy       uint8 (H, W), 1 = breast tissue, same grid as the image
                                  (DBT: one mask for all slices)

``<ab>`` is the first two hex characters of ``id`` (256 shards, so no folder grows past a few
thousand files even for millions of images). ``.npy`` is lossless and reads in ~0.2 ms; DBT
volumes are memory-mapped so a single slice is read without loading the volume.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mammodino.errors import UserError

MANIFEST_NAME = "manifest.csv"

# Columns every manifest has, in this order. Extra columns may follow.
MANIFEST_COLUMNS = [
    "id",  # 16 hex chars, salted hash of the source path: stable, no patient data
    "source",  # path relative to the indexed SRC folder (a folder for per-slice DBT series)
    "stem",  # file stem (or series folder name): what label tables call the image id
    "kind",  # ffdm | dbt
    "slices",  # 1 for ffdm, Z for dbt
    "laterality",  # L | R | "" (unknown)
    "view",  # CC | MLO | ML | LM | XCCL | ... | "" (unknown)
    "laterality_source",  # tag | labels | image | ""
    "patient_key",  # salted hash of PatientID, never the raw id
    "study_key",  # salted hash of StudyInstanceUID
    "height",  # source pixels
    "width",
    "breast_box",  # "x0 y0 x1 y1" in source pixel coordinates, before any flip
    "tissue_fraction",  # breast pixels / all pixels of the source image
    "flipped",  # 1 when the image was mirrored so the chest wall is on the left
    "cache_height",
    "cache_width",
    "image_file",  # relative to the cache folder
    "mask_file",
    "status",  # ok | skipped
    "reason",  # empty when ok
]
# Quality control (mammodino.data.qc), after the columns above in manifests written since
# it exists; a manifest without them (an older cache) reads as "not checked".
QC_COLUMNS = [
    "qc",  # pass | suspect (ok rows); empty for skipped rows
    "qc_reason",  # the failed checks with their numbers ("box is a strip (9% x 100% of the image)")
]
# The picture inside a constant padding frame (films centred on a black square, MIAS-style),
# "x0 y0 x1 y1" in source pixels; empty when the image has no frame. QC measures borders,
# strips and the chest-wall gap against it. Absent from older manifests (no frame assumed).
FRAME_COLUMNS = ["picture_box"]
WRITTEN_COLUMNS = MANIFEST_COLUMNS + QC_COLUMNS + FRAME_COLUMNS


def shard_of(image_id: str) -> str:
    return image_id[:2]


def image_relpath(image_id: str) -> str:
    return f"images/{shard_of(image_id)}/{image_id}.npy"


def mask_relpath(image_id: str) -> str:
    return f"masks/{shard_of(image_id)}/{image_id}.npy"


def read_manifest(cache_dir: str | Path, only_ok: bool = True, check_files: bool = True) -> list[dict]:
    """Rows of ``cache_dir/manifest.csv`` as dicts (strings, ints for the size columns).

    The whole manifest is validated first (:mod:`mammodino.data.manifest_check`): columns,
    kinds, numbers, and for ok rows that ``image_file`` / ``mask_file`` are regular ``.npy``
    files inside the cache whose shapes fit the row. One UserError lists every problem."""
    from mammodino.data.manifest_check import ManifestProblems, check_columns, row_problems

    cache_dir = Path(cache_dir)
    path = cache_dir / MANIFEST_NAME
    if not path.exists():
        raise UserError(f"{cache_dir}: not an indexed cache (no {MANIFEST_NAME}); run `mammodino index` first")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file")
    rows = []
    problems = ManifestProblems(path)
    first_line: dict[str, tuple[int, dict]] = {}  # id -> (line, row) of its first ok row
    repeated: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            check_columns(path, reader.fieldnames)
            for row in reader:
                line = reader.line_num
                if None in row:
                    problems.add(line, [f"{len(reader.fieldnames) + len(row[None])} fields, the header has "
                                        f"{len(reader.fieldnames)}"])
                    continue
                if only_ok and row.get("status") != "ok":
                    continue
                if row.get("status") == "ok" and row.get("id"):
                    seen = first_line.get(row["id"])
                    if seen is not None:
                        if seen[1] == row:  # the same row twice (two writers, a concatenated copy)
                            repeated.append(line)
                            continue
                        problems.add(line, [f"id {row['id'][:40]!r} repeats line {seen[0]} with other values"])
                        continue
                    first_line[row["id"]] = (line, dict(row))
                found = row_problems(cache_dir, row, check_files=check_files)
                if found:
                    problems.add(line, found)
                    continue
                for key in ("slices", "height", "width", "cache_height", "cache_width", "flipped"):
                    if row.get(key) not in (None, ""):
                        row[key] = int(float(row[key]))
                if row.get("tissue_fraction") not in (None, ""):
                    row["tissue_fraction"] = float(row["tissue_fraction"])
                rows.append(row)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV manifest ({exc})") from None
    problems.raise_if_any()
    if repeated:
        import sys

        shown = ", ".join(map(str, repeated[:10])) + (" ..." if len(repeated) > 10 else "")
        print(f"warning: {path}: {len(repeated)} repeated row(s) of an id already listed left out (line {shown})",
              file=sys.stderr, flush=True)
    return rows


def with_sources(cache_dir: str | Path, rows: list[dict]) -> list[dict]:
    """``rows`` with ``source`` and ``stem`` filled in from the cache's private key file
    (:mod:`mammodino.privacy`), for the owner of the sources; rows are left as they are
    when the key file is not at hand."""
    from mammodino.privacy import load_key_for_cache

    key = load_key_for_cache(cache_dir)
    if key is None or not key.entries:
        return rows
    out = []
    for row in rows:
        source, stem = key.entries.get(row.get("id", ""), ("", ""))
        out.append({**row, "source": source or row.get("source", ""), "stem": stem or row.get("stem", "")})
    return out


@dataclass
class CachedImage:
    """One cached image or volume, opened lazily."""

    cache_dir: Path
    row: dict

    @property
    def id(self) -> str:
        return self.row["id"]

    @property
    def is_dbt(self) -> bool:
        return self.row["kind"] == "dbt"

    @property
    def n_slices(self) -> int:
        return int(self.row.get("slices") or 1)

    def image(self, slice_index: int | None = None) -> np.ndarray:
        """uint16 (H, W). For DBT, ``slice_index`` picks one slice (memory-mapped read);
        ``None`` gives the middle slice."""
        if self.is_dbt:
            vol = self._load("image_file", mmap=True)
            z = vol.shape[0] // 2 if slice_index is None else int(slice_index)
            return np.array(vol[z])
        return self._load("image_file")

    def volume(self) -> np.ndarray:
        return self._load("image_file", mmap=True)

    def breast_mask(self) -> np.ndarray:
        """uint8 (H, W) 0/1 breast-tissue mask (not an iBOT patch mask: those are ``masks``)."""
        return self._load("mask_file")

    def _load(self, key: str, mmap: bool = False) -> np.ndarray:
        """The array of ``key``, opened without blocking and checked to be a regular file on
        the open descriptor (a file swapped for a FIFO after the manifest check cannot hang
        the reader); never unpickled. Any failure is a UserError naming the file."""
        import os
        import stat

        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise UserError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UserError(f"{path}: is not a regular file")
            proc = f"/proc/self/fd/{fd}"
            source = proc if os.path.exists(proc) else path
            if mmap:
                return np.load(source, mmap_mode="r", allow_pickle=False)
            with os.fdopen(os.dup(fd), "rb") as fh:
                return np.load(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"{path}: not a readable .npy array ({type(exc).__name__}: {str(exc)[:120]})") from None
        finally:
            os.close(fd)

    def _path(self, key: str) -> Path:
        """Checked again at every read: only regular files inside the cache are opened."""
        from mammodino.data.manifest_check import safe_cache_path

        return safe_cache_path(self.cache_dir, self.row.get(key) or "", key)


def open_cache(cache_dir: str | Path) -> list[CachedImage]:
    """All ok images of a cache, in manifest order."""
    cache_dir = Path(cache_dir)
    rows = read_manifest(cache_dir)
    if not rows:
        raise UserError(f"{cache_dir}: the cache holds no usable image (every row was skipped)")
    return [CachedImage(cache_dir, row) for row in rows]

