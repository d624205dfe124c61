"""Look at everything written under a folder: digests (was anything modified?) and string
searches that also open the containers a plain ``grep`` cannot see into.

``find_strings`` reads every regular file as bytes and also searches

- ``.npz`` / any zip: every member, decompressed;
- ``.png``: the text chunks (``tEXt``, ``zTXt`` and ``iTXt``, inflated);
- ``.html`` / text: base64 ``data:`` URIs, decoded (and searched again as PNG);
- ``.safetensors``: the JSON header is plain bytes already; searched as is;

each needle in UTF-8, UTF-16-LE and UTF-32-LE (numpy's ``<U`` string arrays) and, for
text, case-insensitively. FIFOs, sockets and devices are
never opened (a FIFO would block), symbolic links are not followed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path

_DATA_URI = re.compile(rb"data:[a-z/+.-]+;base64,([A-Za-z0-9+/=]+)")


def tree_digest(root) -> dict[str, tuple]:
    """``{relative path: (kind, size, sha1 or link target)}`` for everything under ``root``
    (lstat only; regular files hashed; special files never opened)."""
    root = Path(root)
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha1()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                out[rel] = ("file", st.st_size, st.st_mtime_ns, h.hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode))
    return out


def _png_text(data: bytes) -> list[bytes]:
    """Decoded payloads of the text chunks of a PNG."""
    out = []
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return out
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        payload = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        try:
            if kind == b"tEXt":
                out.append(payload)
            elif kind == b"zTXt":
                key, _, rest = payload.partition(b"\0")
                out.append(key + b"\0" + zlib.decompress(rest[1:]))
            elif kind == b"iTXt":
                key, _, rest = payload.partition(b"\0")
                flag = rest[0]
                _, _, rest = rest[2:].partition(b"\0")  # language
                _, _, text = rest.partition(b"\0")  # translated keyword
                out.append(key + b"\0" + (zlib.decompress(text) if flag else text))
        except (zlib.error, IndexError):
            out.append(payload)
        if kind == b"IEND":
            break
    return out


def _views(name: str, data: bytes, depth: int = 0) -> list[tuple[str, bytes]]:
    """The raw bytes plus every decoded view of them. A base64 ``data:`` payload is searched
    decoded, not as its letters: a megabyte of base64 spells any five-letter word
    case-insensitively by chance about once in thirty reports."""
    if depth > 2:
        return [(name, data)]
    views = [(name, _DATA_URI.sub(rb"data:;base64,", data) if b"base64," in data else data)]
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for member in zf.namelist():
                    views += _views(f"{name}!{member}", zf.read(member), depth + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError):
            pass
    for i, text in enumerate(_png_text(data)):
        views.append((f"{name}#text{i}", text))
    if b"base64," in data:
        for i, match in enumerate(_DATA_URI.finditer(data)):
            try:
                decoded = base64.b64decode(match.group(1), validate=False)
            except (ValueError, base64.binascii.Error):
                continue
            views += _views(f"{name}#data{i}", decoded, depth + 1)
    return views


def _looks_textual(data: bytes) -> bool:
    sample = data[:4096]
    return bool(sample) and sample.count(b"\0") == 0


def find_strings(roots, needles: list[str]) -> list[tuple[str, str]]:
    """``[(where, needle)]`` for every needle found in any file under ``roots`` (files or
    folders). An empty list means nothing was found anywhere."""
    # numpy stores str arrays as UTF-32 ('<U'), Windows tools write UTF-16: search all three
    encoded = [(n, n.encode(enc)) for n in needles for enc in ("utf-8", "utf-16-le", "utf-32-le")]
    hits = []
    files = []
    for root in roots if isinstance(roots, (list, tuple)) else [roots]:
        root = Path(root)
        if root.is_file():
            files.append(root)
            continue
        for dirpath, _, filenames in os.walk(root, followlinks=False):
            for name in filenames:
                files.append(Path(dirpath) / name)
    for path in sorted(files):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        data = path.read_bytes()
        for where, view in _views(str(path), data):
            lowered = view.lower() if _looks_textual(view) else None
            found = set()
            for needle, raw in encoded:
                if needle not in found and (raw in view or (lowered is not None and raw.lower() in lowered)):
                    found.add(needle)
                    hits.append((where, needle))
    return hits


def files_under(roots) -> list[Path]:
    """Every regular file under ``roots`` (sorted), for reports of what was searched."""
    out = []
    for root in roots:
        for dirpath, _, filenames in os.walk(root, followlinks=False):
            out += [Path(dirpath) / f for f in filenames if stat.S_ISREG(os.lstat(Path(dirpath) / f).st_mode)]
    return sorted(out)
