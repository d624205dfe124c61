"""A disk that fills up (or turns read-only) while `mammodino index` writes the cache.

Root ignores permissions, so the disk is simulated: the real CLI runs in a subprocess with
RLIMIT_FSIZE and SIGXFSZ ignored (writes past the limit fail with EFBIG, like ENOSPC on a
full disk), or np.save / os.replace are made to fail in-process with ENOSPC / EROFS.

What must hold: the run stops with one clear message (exit 2, the cache folder and the
cause named, no traceback); no manifest row says ok for an image whose files are missing
or partial; no temporary file is left; the same command run again once there is space
finishes the job (every image ok, every source once).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from mammodino.errors import UserError
from support import index_fuzz as fuzz

N_IMAGES = 14  # phantom_dir: 12 FFDM + 2 DBT


def _assert_no_ok_row_without_its_files(out: Path):
    rows = fuzz.read_rows(out)
    bad = [(r["source"], fuzz.check_cached_files(out, r)) for r in rows if r.get("status") == "ok"]
    assert [b for b in bad if b[1]] == []
    assert not list(out.rglob("*.tmp-*")), "temporary files left behind"


def _assert_complete(out: Path, n: int = N_IMAGES):
    rows = fuzz.read_rows(out)
    sources = [r["source"] for r in rows]
    assert len(sources) == len(set(sources)), "a source is listed twice"
    ok = [r for r in rows if r["status"] == "ok"]
    not_ok = [(r["source"], r["reason"]) for r in rows if r["status"] != "ok"]
    assert len(ok) == n, not_ok
    _assert_no_ok_row_without_its_files(out)


def _assert_clear_error(result, out: Path, *causes: str):
    assert result.returncode == 2, result.output[-2500:]
    assert "Traceback" not in result.output, result.output[-2500:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert str(out) in errors[0] and any(c in errors[0] for c in causes), errors[0]


@pytest.fixture(scope="module")
def full_while_caching(phantom_dir, tmp_path_factory):
    """Index at size 256 with files limited to 64 kB: masks fit, most images do not."""
    out = tmp_path_factory.mktemp("full") / "cache"
    result = fuzz.run_index(phantom_dir, out, workers=2, size=256, fsize=64_000, peak_rss=False)
    return out, result


def test_a_full_disk_never_leaves_an_ok_row_without_its_files(full_while_caching):
    out, _ = full_while_caching
    _assert_no_ok_row_without_its_files(out)


def test_a_full_disk_stops_the_run_with_one_clear_message(full_while_caching):
    out, result = full_while_caching
    _assert_clear_error(result, out, "File too large", "No space left", "disk")


def test_after_a_full_disk_the_same_command_finishes_the_job(full_while_caching, phantom_dir):
    out, _ = full_while_caching
    again = fuzz.run_index(phantom_dir, out, workers=2, size=256, peak_rss=False)
    assert again.returncode == 0, again.output[-2000:]
    _assert_complete(out)


def test_a_full_disk_while_appending_to_the_manifest(phantom_dir, tmp_path):
    """Tiny images fit, the manifest hits the limit after a few rows."""
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted((phantom_dir / "ffdm").glob("*.dcm")):
        os.symlink(p, src / p.name)
    out = tmp_path / "cache"
    result = fuzz.run_index(src, out, workers=2, size=16, fsize=2_000, peak_rss=False)
    _assert_no_ok_row_without_its_files(out)
    again = fuzz.run_index(src, out, workers=2, size=16, peak_rss=False)
    assert again.returncode == 0, again.output[-2000:]
    _assert_complete(out, n=12)
    _assert_clear_error(result, out, "File too large", "No space left", "manifest")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_in_process(phantom_dir, tmp_path, monkeypatch, code):
    """The 5th cache file write fails half-way (ENOSPC) or the cache turns read-only
    (EROFS): index_folder raises a UserError naming the folder; a later run completes."""
    from mammodino.data.indexer import index_folder

    real_save = np.save
    calls = {"n": 0}

    def failing_save(file, arr, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 5:
            if hasattr(file, "write"):
                file.write(b"\x93NUMPY partial")
            raise OSError(code, os.strerror(code))
        return real_save(file, arr, *args, **kwargs)

    out = tmp_path / "cache"
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(UserError) as err:
        index_folder(phantom_dir, out, size=64, workers=1, progress=False)
    monkeypatch.undo()
    assert str(out) in str(err.value) and os.strerror(code) in str(err.value)
    _assert_no_ok_row_without_its_files(out)
    index_folder(phantom_dir, out, size=64, workers=1, progress=False)
    _assert_complete(out)
