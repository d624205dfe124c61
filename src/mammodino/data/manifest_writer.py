"""Append-only, crash-tolerant writer for ``OUT/manifest.csv``.

- The header is written once, when the file is new or empty.
- Each row is formatted completely in memory and written with one ``write`` call, then
  flushed, so a killed run leaves at most one partial last line.
- On open, a partial last line (no trailing newline) is cut off: that source was never
  recorded as done, so the resumed run simply does it again.
- An existing manifest with different leading columns is refused rather than mixed.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from mammodino.data.cache import MANIFEST_COLUMNS, MANIFEST_NAME, WRITTEN_COLUMNS
from mammodino.errors import UserError


def repair_tail(path: Path) -> int:
    """Cut a partial last line. Returns the number of bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # walk back to the last newline (rows are short; read blocks from the end)
        pos = size
        block = 64 * 1024
        cut = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                break
            pos = start
        fh.truncate(cut)
        return size - cut


def source_key(source: str) -> int:
    """64-bit key of a row's ``id`` (the salted hash of its source path) for the resume check."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(source.encode("utf-8"), digest_size=8).digest(), "little")


class DoneSet:
    """Ids of sources already in a manifest (status ok or skipped), 8 bytes each (sorted
    uint64), so resuming a run over millions of files does not hold millions of strings.
    Keyed by ``id``, not ``source``: the manifest carries no source path."""

    def __init__(self, keys: np.ndarray):
        self._keys = np.unique(keys.astype(np.uint64))

    def __len__(self) -> int:
        return int(self._keys.size)

    def __contains__(self, source: str) -> bool:
        if self._keys.size == 0:
            return False
        key = np.uint64(source_key(source))
        i = int(np.searchsorted(self._keys, key))
        return i < self._keys.size and self._keys[i] == key

    @classmethod
    def from_manifest(cls, path: Path) -> "DoneSet":
        keys = []
        if path.exists() and path.stat().st_size:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    return cls(np.zeros(0, np.uint64))
                try:
                    i_source, i_status = header.index("id"), header.index("status")
                except ValueError:
                    raise UserError(f"{path}: not a mammodino manifest (columns {header[:6]} ...)") from None
                for row in reader:
                    if len(row) > max(i_source, i_status) and row[i_status] in ("ok", "skipped"):
                        keys.append(source_key(row[i_source]))
        return cls(np.asarray(keys, dtype=np.uint64))


class ManifestWriter:
    """``with ManifestWriter(out) as w: w.write(row_dict)``."""

    def __init__(self, out_dir, columns=WRITTEN_COLUMNS):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.columns = list(columns)
        self._fh = None

    def __enter__(self) -> "ManifestWriter":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with self.path.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if header[: len(MANIFEST_COLUMNS)] != MANIFEST_COLUMNS:
                raise UserError(f"{self.path}: existing manifest has other columns ({', '.join(header[:5])} ...); "
                                "index into a new folder")
            self.columns = header  # an older manifest keeps its columns (e.g. no qc: rows read as not checked)
        self._fh = open(self.path, "ab", buffering=0)  # unbuffered: one os.write per row
        if new:
            self._write_line(self.columns)

    def write(self, row: dict) -> None:
        self._write_line([_clean(row.get(c, "")) for c in self.columns])

    def _write_line(self, values) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        data = buf.getvalue().encode("utf-8")
        try:
            n = self._fh.write(data)  # one write system call per row
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc} (disk full or read-only?); "
                            "run the same command again when there is space") from None
        if n is not None and n != len(data):
            raise UserError(f"cannot write {self.path}: disk full ({n} of {len(data)} bytes written); "
                            "run the same command again when there is space")

    def close(self) -> None:
        if self._fh is not None:
            try:
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None


def _clean(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return text.replace("\r", " ").replace("\n", " ") if ("\n" in text or "\r" in text) else text
