"""``index`` guards its cache: one writer at a time, one geometry per cache, and worker
processes that end with the command (SIGTERM, SIGINT, SIGKILL)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mammodino.data.cache_settings import SETTINGS_NAME
from mammodino.data.indexer import index_folder
from mammodino.errors import UserError
from mammodino.locks import LOCK_NAME


def test_reindex_with_another_size_is_refused(phantom_dir, tmp_path):
    out = tmp_path / "cache"
    first = index_folder(phantom_dir, out, size=128, progress=False)
    assert first["ok"] > 0
    rows_before = (out / "manifest.csv").read_text()
    with pytest.raises(UserError, match=r"size: cache 128, this run 450"):
        index_folder(phantom_dir, out, size=450, progress=False)
    assert (out / "manifest.csv").read_text() == rows_before
    again = index_folder(phantom_dir, out, size=128, progress=False)  # same settings: resumes
    assert again["already_done"] == first["ok"] + first["skipped"] and again["ok"] == 0
    assert '"size": 128' in (out / SETTINGS_NAME).read_text()


HOLDER = textwrap.dedent("""
    import sys, time
    from mammodino.locks import FolderLock
    FolderLock(sys.argv[1], "cache").acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_second_index_into_one_cache_is_refused(phantom_dir, tmp_path):
    out = tmp_path / "cache"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"cache is being written by PID {holder.pid}"):
            index_folder(phantom_dir, out, size=128, progress=False)
        assert not (out / "manifest.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    summary = index_folder(phantom_dir, out, size=128, progress=False)  # stale lock: taken over
    assert summary["ok"] > 0 and not (out / LOCK_NAME).exists()


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    text = fh.read()
            except OSError:
                continue
            fields = text[text.rfind(")") + 2:].split()
            if fields[0] != "Z":
                parent_of[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent_of.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pids):
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.add(pid)
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def slow_source(tmp_path_factory):
    """400 names for one 2400x1900 NPY mammogram-like image (hard links): enough work that
    the workers are busy when the command is signalled."""
    src = tmp_path_factory.mktemp("many")
    yy, xx = np.mgrid[0:2400, 0:1900]
    img = (np.clip(1.0 - ((xx / 1500.0) ** 2 + ((yy - 1200) / 1100.0) ** 2), 0, 1) * 60000).astype(np.uint16)
    first = src / "img0000.npy"
    np.save(first, img)
    for i in range(1, 400):
        os.link(first, src / f"img{i:04d}.npy")
    return src


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_workers_end_with_the_command(slow_source, tmp_path, sig):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "mammodino", "index", str(slow_source), str(tmp_path / "c"),
                             "--workers", "2", "--size", "256", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        rows = tmp_path / "c" / "manifest.csv"
        while time.time() < deadline:  # until the workers have written a few rows
            time.sleep(0.2)
            if rows.exists() and rows.read_text().count("\n") > 3 and len(_children(proc.pid)) >= 3:
                break
        assert proc.poll() is None, "index finished before it could be signalled"
        kids = _children(proc.pid)
        assert len(kids) >= 3, kids
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.time() + 15
        while _alive(kids) and time.time() < deadline:
            time.sleep(0.2)
        left = _alive(kids)
        assert not left, f"orphans after {sig.name}: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _alive(_children(proc.pid)):
            os.kill(pid, signal.SIGKILL)


def test_reindex_with_and_without_whole_image_is_refused(phantom_dir, tmp_path):
    cropped, whole = tmp_path / "cropped", tmp_path / "whole"
    index_folder(phantom_dir, cropped, size=64, progress=False)
    with pytest.raises(UserError, match="whole_image: cache False, this run True"):
        index_folder(phantom_dir, cropped, size=64, whole_image=True, progress=False)
    index_folder(phantom_dir, whole, size=64, whole_image=True, progress=False)
    with pytest.raises(UserError, match="whole_image: cache True, this run False"):
        index_folder(phantom_dir, whole, size=64, progress=False)
