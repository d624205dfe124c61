"""Pseudonymous keys: patient data never leaves the DICOM header in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

SALT_FILE = ".mammodino-salt"


def pseudonym(value: str | None, salt: str, length: int = 16) -> str:
    """Salted HMAC-SHA256 of ``value``; empty string for a missing value."""
    if value is None or str(value).strip() == "":
        return ""
    digest = hmac.new(salt.encode(), str(value).strip().encode(), hashlib.sha256).hexdigest()
    return digest[:length]


def load_or_create_salt(folder: Path, salt: str | None = None) -> str:
    """The salt of a cache folder. Created once (random) and reused so keys stay stable."""
    folder = Path(folder)
    path = folder / SALT_FILE
    if salt:
        return salt
    if path.exists():
        return path.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(16)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.replace(path)
    return value
