"""Output paths: anything already there is refused with a clear message, nothing replaced."""

import os

import pytest

from mammodino.errors import UserError
from mammodino.outputs import new_file, output_folder


def test_new_file_refuses_every_kind_of_existing_path(tmp_path):
    (tmp_path / "f").write_text("mine")
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for name, kind in (("f", "a file"), ("d", "a folder"), ("fifo", "FIFO"), ("dangling", "symbolic link")):
        with pytest.raises(UserError, match=f"--out {tmp_path / name}: already exists .*{kind}"):
            new_file(tmp_path / name)
    assert (tmp_path / "f").read_text() == "mine"
    assert new_file(tmp_path / "new.npz") == tmp_path / "new.npz"
    assert new_file(tmp_path / "a" / "b" / "new.npz")  # parents are created by the writer


def test_new_file_refuses_a_file_as_parent(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(UserError, match="is a file, not a folder"):
        new_file(tmp_path / "f" / "x.png")
    with pytest.raises(UserError, match="is a file, not a folder"):
        output_folder(tmp_path / "f" / "sub" / "out")


def test_replace_if_lets_a_regenerable_file_through(tmp_path):
    (tmp_path / "r.html").write_text("ours")
    assert new_file(tmp_path / "r.html", replace_if=lambda p: p.read_text() == "ours")
    with pytest.raises(UserError):
        new_file(tmp_path / "r.html", replace_if=lambda p: False)


def test_output_folder_refuses_files_and_clashes(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(UserError, match="exists and is a file, not a folder"):
        output_folder(tmp_path / "f", "OUT")
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    assert output_folder(d, will_write=("results.json", "roc_*.png")) == d  # unrelated files are fine
    (d / "roc_task_logistic.png").write_bytes(b"png")
    with pytest.raises(UserError, match="already holds roc_task_logistic.png from an earlier run"):
        output_folder(d, will_write=("results.json", "roc_*.png"))
    assert (d / "roc_task_logistic.png").read_bytes() == b"png"
