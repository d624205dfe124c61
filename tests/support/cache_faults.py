"""Hostile caches and label tables, run through the installed CLI in subprocesses.

Each manifest case edits a copy of a good cache (what a hand-edited or downloaded cache
looks like); each table case writes a label table for ``probe``. :func:`run_case` runs the
command with a timeout and classifies the outcome: ``clear`` (exit 2, an ``error:`` line,
no traceback), ``ok`` (exit 0: the case was handled, e.g. a duplicate row reported and
dropped), ``traceback``, ``hang`` or ``other``; and counts the bytes of a planted secret
(a file outside the cache) found in the output or anything written. Used by
``benchmarks/faults.py`` (scenario ``inputs``) and ``tests/data/test_cache_faults.py``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from support import procs
from support.micro import MICRO

SECRET = b"ZEBRA-SECRET-7731"  # planted outside the cache: must never be read back


def _rows(cache: Path) -> tuple[list[str], list[dict]]:
    with open(cache / "manifest.csv", newline="") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames), list(r)


def _write(cache: Path, header: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (cache / "manifest.csv").write_text(buf.getvalue())


def _ok(rows):
    return [r for r in rows if r["status"] == "ok"]


def _edit(field, value, kind=None):
    def edit(cache: Path, outside: Path):
        header, rows = _rows(cache)
        row = next(r for r in _ok(rows) if kind is None or r["kind"] == kind)
        row[field] = value(cache, outside) if callable(value) else value
        _write(cache, header, rows)
    return edit


def _drop_column(name):
    def edit(cache: Path, outside: Path):
        header, rows = _rows(cache)
        _write(cache, [h for h in header if h != name], rows)
    return edit


def _duplicate(cache: Path, outside: Path):
    header, rows = _rows(cache)
    _write(cache, header, rows + [dict(_ok(rows)[0])])


def _fifo(cache: Path, outside: Path):
    header, rows = _rows(cache)
    row = _ok(rows)[0]
    os.remove(cache / row["image_file"])
    os.mkfifo(cache / row["image_file"])


def _symlink_out(cache: Path, outside: Path):
    header, rows = _rows(cache)
    row = _ok(rows)[0]
    os.remove(cache / row["image_file"])
    os.symlink(outside / "secret.npy", cache / row["image_file"])


def _zero_bytes(cache: Path, outside: Path):
    header, rows = _rows(cache)
    (cache / _ok(rows)[0]["image_file"]).write_bytes(b"")


def _huge_npy(cache: Path, outside: Path):
    header, rows = _rows(cache)
    row = next(r for r in _ok(rows) if r["kind"] == "ffdm")
    path = cache / row["image_file"]
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<u2", "fortran_order": False, "shape": (200_000, 200_000)})
        fh.write(b"\0" * 64)
    np.lib.format.open_memmap  # noqa: B018 (the header claims 80 GB; the file holds 64 bytes)


def _object_npy(cache: Path, outside: Path):
    header, rows = _rows(cache)
    row = next(r for r in _ok(rows) if r["kind"] == "ffdm")
    np.save(cache / row["image_file"], np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _non_utf8(cache: Path, outside: Path):
    data = (cache / "manifest.csv").read_bytes()
    (cache / "manifest.csv").write_bytes(data.replace(b"\n", b"\n\xff\xfe", 1))


def _huge_field(cache: Path, outside: Path):
    header, rows = _rows(cache)
    _ok(rows)[0]["reason"] = "x" * 300_000
    _write(cache, header, rows)


def _manifest_fifo(cache: Path, outside: Path):
    os.remove(cache / "manifest.csv")
    os.mkfifo(cache / "manifest.csv")


def _manifest_dir(cache: Path, outside: Path):
    os.remove(cache / "manifest.csv")
    (cache / "manifest.csv").mkdir()


def _header_only(cache: Path, outside: Path):
    header, _rows_ = _rows(cache)
    _write(cache, header, [])


def _thin_dbt(cache: Path, outside: Path):
    header, rows = _rows(cache)
    row = next(r for r in _ok(rows) if r["kind"] == "dbt")
    vol = np.load(cache / row["image_file"])
    np.save(cache / row["image_file"], vol[:1])
    row["slices"] = "1"
    _write(cache, header, rows)


MANIFEST_CASES = {
    "missing kind column": _drop_column("kind"),
    "missing image_file column": _drop_column("image_file"),
    "non-numeric cache_height": _edit("cache_height", "tall"),
    "kind=dbt on a 2-D image": _edit("kind", "dbt", kind="ffdm"),
    "kind=ffdm on a volume": _edit("kind", "ffdm", kind="dbt"),
    "unknown kind": _edit("kind", "ct"),
    "absolute image_file": _edit("image_file", "/etc/passwd"),
    "image_file ../outside": _edit("image_file", "../outside/secret.npy"),
    "image_file ../../../../etc/passwd": _edit("image_file", "../../../../etc/passwd"),
    "mask_file ../outside": _edit("mask_file", "../outside/secret.npy"),
    "image_file with NUL": _edit("image_file", "images/a\x00b.npy"),
    "image_file a FIFO": _fifo,
    "symlink out of the cache": _symlink_out,
    "zero-byte image": _zero_bytes,
    "80 GB npy header": _huge_npy,
    "pickled object npy": _object_npy,
    "image file missing": _edit("image_file", "images/00/0000000000000000.npy"),
    "duplicate id": _duplicate,
    "non-UTF-8 manifest": _non_utf8,
    "300 kB field": _huge_field,
    "manifest a FIFO": _manifest_fifo,
    "manifest a folder": _manifest_dir,
    "header only": _header_only,
    "1-slice DBT volume": _thin_dbt,
    "negative tissue_fraction text": _edit("tissue_fraction", "nan"),
}
# cases a command may complete (the problem is reported and the row dropped or read as is)
MAY_COMPLETE = {"duplicate id", "1-slice DBT volume"}


def plant_outside(root: Path) -> Path:
    outside = root / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    np.save(outside / "secret.npy", np.frombuffer(SECRET * 64, dtype=np.uint8).reshape(32, -1))
    return outside


def make_case(name: str, cache: Path, work: Path) -> Path:
    """A copy of ``cache`` with case ``name`` applied, at ``work/<n>/cache``."""
    root = work / name.replace(" ", "_").replace("/", "_")
    if root.exists():
        shutil.rmtree(root)
    outside = plant_outside(root)
    copy = root / "cache"
    shutil.copytree(cache, copy, symlinks=True)
    MANIFEST_CASES[name](copy, outside)
    return copy


def commands(cache: Path, out: Path) -> dict[str, list[str]]:
    py = [sys.executable, "-m", "mammodino"]
    return {
        "pretrain": py + ["pretrain", "--config", "cpu-tiny", "--data", str(cache), "--out", str(out / "run"),
                          "--no-progress", *MICRO, "train.steps=1", "train.checkpoint_every=1"],
        "embed": py + ["embed", "--random-init", str(cache), str(out / "f.npz"), "--no-progress", "--resolution", "64"],
        "preview": py + ["preview", str(cache), "--out", str(out / "p.png"), "--n", "2"],
    }


@dataclass
class Outcome:
    case: str
    command: str
    verdict: str  # clear | ok | traceback | hang | other
    message: str
    seconds: float
    secret_bytes: int
    peak_rss_mb: float | None = None


def classify(res: procs.ProcResult) -> tuple[str, str]:
    text = res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    if res.timed_out:
        return "hang", text[-200:]
    if "Traceback" in text:
        return "traceback", text.strip().splitlines()[-1][:200] if text.strip() else ""
    if res.returncode == 2 and errors:
        return "clear", errors[0][:240]
    if res.returncode == 0:
        return "ok", (text.strip().splitlines() or [""])[-1][:200]
    return "other", f"exit {res.returncode}: {text[-200:]}"


def secret_bytes(res: procs.ProcResult, out: Path) -> int:
    from support.scan import find_strings

    n = (res.stdout + res.stderr).encode(errors="replace").count(SECRET) * len(SECRET)
    if out.exists():
        n += sum(len(SECRET) for _ in find_strings(out, [SECRET.decode()]))
    return n


def run_case(name: str, command: str, cache: Path, work: Path, timeout: float = 120, peak_rss: bool = False) -> Outcome:
    out = work / "out" / f"{name}-{command}".replace(" ", "_").replace("/", "_")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    res = procs.run(commands(cache, out)[command], env=procs.quiet_env(), timeout=timeout, peak_rss=peak_rss)
    verdict, message = classify(res)
    rss = None if res.peak_rss_bytes is None else round(res.peak_rss_bytes / 2**20, 1)
    return Outcome(name, command, verdict, message, round(res.seconds, 1), secret_bytes(res, out), rss)
