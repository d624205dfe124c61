"""One atomic-write helper: the final name always holds a whole file."""

import os
import stat

import pytest

from mammodino import atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    atomic.write_text(path, "old\n")

    def half_then_fail(tmp):
        tmp.write_text("ne")  # what a kill or a full disk leaves behind
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic.atomic_write(path, half_then_fail, durable=True)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_replaces_whole_and_names_the_temporary_with_the_suffix(tmp_path):
    path = tmp_path / "grid.png"
    seen = []
    atomic.atomic_write(path, lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"new")), suffix=".tmp.png")
    assert seen == ["grid.png.tmp.png"] and path.read_bytes() == b"new"
    atomic.write_json(path.with_suffix(".json"), {"a": 1})
    assert path.with_suffix(".json").read_text() == '{\n "a": 1\n}\n'


def test_mode_is_set_before_the_file_gets_its_name(tmp_path):
    path = tmp_path / "model.safetensors"

    def write_private(tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)

    atomic.atomic_write(path, write_private, mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    atomic.atomic_write(path, write_private)  # no mode: what the writer made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
