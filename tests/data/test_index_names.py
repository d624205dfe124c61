"""Source paths and file names that are not valid UTF-8 (Linux names are bytes) through
``index``: indexed or skipped with a reason, never a traceback; the cache holds neither the
raw bytes nor the name; the private key file shows the bytes as \\xNN; resume finds them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from support.dicom_files import write_mammo_dicom

RAW_NAMES = [b"MRN\xe9\xff", b"DOE\xffJANE_0.dcm", b"\xc3\x28ACC77.dcm", b"\xfe\xffjunk.dcm", b"\xfaFIFO.dcm",
             b"\xfdlink.dcm", b"\xfbtrunc.png"]
PLANTED = [b"MRN", b"DOE", b"JANE", b"ACC77", b"junk", b"FIFO", b"trunc"]


def _breast(h=200, w=150, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (0.4 * h)) ** 2 + (xx / (0.75 * w)) ** 2 <= 1
    img = np.zeros((h, w))
    img[inside] = 0.4 + 0.4 * (1 - xx[inside] / w) + 0.1 * rng.random(inside.sum())
    return np.rint(np.clip(img, 0, 1) * 4000).astype(np.uint16)


@pytest.fixture
def bad_names(tmp_path):
    src = os.fsencode(tmp_path / "src")
    os.makedirs(src + b"/" + RAW_NAMES[0])
    good = write_mammo_dicom(tmp_path / "good.dcm", _breast(), patient_id="ANON-1")
    data = good.read_bytes()
    for rel in (RAW_NAMES[0] + b"/" + RAW_NAMES[1], RAW_NAMES[2], b"plain.dcm"):
        with open(src + b"/" + rel, "wb") as fh:
            fh.write(data)
    with open(src + b"/" + RAW_NAMES[3], "wb") as fh:
        fh.write(b"not a dicom file " * 8)
    os.mkfifo(src + b"/" + RAW_NAMES[4])
    os.symlink(b"/nonexistent/" + RAW_NAMES[0], src + b"/" + RAW_NAMES[5])
    with open(src + b"/" + RAW_NAMES[0] + b"/" + RAW_NAMES[6], "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return tmp_path, os.fsdecode(src)


def _all_bytes(folder):
    for root, _, files in os.walk(os.fsencode(folder)):
        for name in files:
            yield os.path.join(root, name), name, open(os.path.join(root, name), "rb").read()


@pytest.mark.parametrize("workers", [1, 2])
def test_names_that_are_not_utf8_are_indexed_without_a_traceback(bad_names, workers):
    tmp, src = bad_names
    cache = tmp / f"cache{workers}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "mammodino", "index", src, str(cache), "--size", "64", "--workers", str(workers),
           "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    text = res.stdout + res.stderr
    assert res.returncode == 0 and b"Traceback" not in text, text.decode(errors="replace")
    manifest = (cache / "manifest.csv").read_text(encoding="utf-8")  # valid UTF-8
    rows = manifest.splitlines()[1:]
    ok = [r for r in rows if ",ok," in r]
    assert len(rows) == 7 and len(ok) == 3, manifest
    for reason in ("not a DICOM file", "named pipe", "broken symbolic link", "zero-sized image"):
        assert reason in manifest
    for path, name, data in _all_bytes(cache):  # no raw byte of a name, no part of one, in the cache
        for planted in PLANTED:
            assert planted not in data and planted not in name, (path, planted)
        if path.endswith(b".csv") or path.endswith(b".json"):
            data.decode("utf-8")
    key = (tmp / f"cache{workers}.mammodino-key").read_text(encoding="utf-8")  # private, valid UTF-8
    assert "MRN\\xe9\\xff/DOE\\xffJANE_0.dcm" in key and "\\xc3(ACC77.dcm" in key
    again = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert again.returncode == 0 and b"7 already done" in again.stdout, again.stdout + again.stderr
    assert (cache / "manifest.csv").read_text(encoding="utf-8") == manifest


def test_a_source_folder_named_with_bytes_is_shown_escaped(bad_names, capsys):
    from mammodino.cli import main

    tmp, src = bad_names
    rc = main(["index", os.path.join(src, os.fsdecode(RAW_NAMES[0])), str(tmp / "c"), "--size", "64"])
    out = capsys.readouterr().out
    assert rc == 0 and "MRN\\xe9\\xff" in out and "1 ok, 1 skipped" in out, out
