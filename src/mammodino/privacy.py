"""Pseudonyms and the private key file: patient data never leaves the sources in clear.

A cache is made to be copied (to a cluster, to a colleague), so it carries no raw path, file
or folder name, and no header identifier; archives name files and folders after patients
(``MRN12345678/ACC99887766/MRN12345678_DOE_JANE_0.dcm``). Its ``id``, ``patient_key`` and
``study_key`` are keyed hashes (HMAC-SHA256), and the key (the salt) would make them
reversible by anyone holding a list of candidate MRNs, so the salt does not travel with the
cache either. The salt and the map back to the sources (``id -> source path, file stem``)
live in a private **key file** beside the cache folder, ``<cache>.mammodino-key``, written
with owner-only permissions (0600); no command copies it. ``index`` needs it to resume and
``probe`` to join label tables by path or stem; both read it from that place.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import secrets
import stat
from pathlib import Path

from mammodino.errors import UserError

SALT_FILE = ".mammodino-salt"  # inside a cache: where versions before the key file kept the salt
KEY_SUFFIX = ".mammodino-key"
KEY_MAGIC = "# mammodino-key-1 salt="
KEY_COLUMNS = ["id", "source", "stem"]


def pseudonym(value: str | None, salt: str, length: int = 16) -> str:
    """Salted HMAC-SHA256 of ``value``; empty string for a missing value."""
    if value is None or str(value).strip() == "":
        return ""
    digest = hmac.new(salt.encode(), str(value).strip().encode(), hashlib.sha256).hexdigest()
    return digest[:length]


def key_path_for(cache_dir: str | Path) -> Path:
    """``/data/caches/rsna`` -> ``/data/caches/rsna.mammodino-key`` (outside the cache)."""
    folder = Path(os.path.abspath(Path(cache_dir).expanduser()))
    return folder.with_name(folder.name + KEY_SUFFIX)


class KeyFile:
    """The salt and ``id -> (source, stem)`` of one cache, read into memory."""

    def __init__(self, path: Path, salt: str, entries: dict[str, tuple[str, str]]):
        self.path, self.salt, self.entries = path, salt, entries

    def source(self, image_id: str) -> str:
        return self.entries.get(image_id, ("", ""))[0]

    def stem(self, image_id: str) -> str:
        return self.entries.get(image_id, ("", ""))[1]


def read_key_file(path: str | Path) -> KeyFile:
    """Parse a key file; a UserError naming it when it is not one."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise UserError(f"key file {path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"key file {path}: not a regular file")
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\n")
        if not first.startswith(KEY_MAGIC) or len(first) <= len(KEY_MAGIC):
            raise UserError(f"key file {path}: not a mammodino key file (first line should start {KEY_MAGIC!r})")
        salt = first[len(KEY_MAGIC):].strip()
        entries: dict[str, tuple[str, str]] = {}
        reader = csv.reader(fh)
        next(reader, None)  # header
        for row in reader:
            if len(row) == 3 and row[0]:
                entries[row[0]] = (row[1], row[2])
    return KeyFile(path, salt, entries)


def load_key_for_cache(cache_dir: str | Path) -> KeyFile | None:
    """The cache's key file, or None when it is not at hand (a copied cache). A cache of an
    older version with its salt inside gives a KeyFile without entries."""
    path = key_path_for(cache_dir)
    if path.exists():
        return read_key_file(path)
    legacy = Path(cache_dir) / SALT_FILE
    if legacy.is_file():
        return KeyFile(legacy, legacy.read_text().strip(), {})
    return None


class KeyWriter:
    """Creates (0600) or appends to a key file, one ``write`` per row like the manifest."""

    def __init__(self, path: Path, salt: str):
        self.path, self.salt = Path(path), salt
        self._fd: int | None = None

    def open(self) -> "KeyWriter":
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.fchmod(self._fd, 0o600)  # owner only, whatever the umask or an older file said
        except OSError as exc:
            raise UserError(f"cannot write the key file {self.path}: {exc.strerror or exc}") from None
        if new:
            self._write(f"{KEY_MAGIC}{self.salt}\n" + ",".join(KEY_COLUMNS) + "\n")
        return self

    def add(self, image_id: str, source: str, stem: str) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([image_id, source, stem])
        self._write(buf.getvalue())

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")
        try:
            n = os.write(self._fd, data)
        except OSError as exc:
            raise UserError(f"cannot write the key file {self.path}: {exc.strerror or exc} (disk full?); "
                            "run the same command again when there is space") from None
        if n != len(data):
            raise UserError(f"cannot write the key file {self.path}: disk full; run the same command again")

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def salt_for_cache(out: Path, salt: str | None, has_rows: bool) -> str:
    """The salt of cache ``out``: from its key file (or an older cache's salt file inside
    it), ``salt`` for a new one, else a new random one. A given salt must match."""
    existing = load_key_for_cache(out)
    if existing is not None:
        if salt and salt != existing.salt:
            raise UserError(f"{out}: --salt differs from the salt this cache was built with ({existing.path}); "
                            "patient keys would not match. Use the same salt or a new cache folder")
        return existing.salt
    if has_rows and not salt:
        raise UserError(f"{out}: the manifest exists but its key file {key_path_for(out)} does not; "
                        "put the key file back beside the cache, or pass the --salt used to build it")
    return salt or secrets.token_hex(16)
