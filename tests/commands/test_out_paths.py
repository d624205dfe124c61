"""Every command that writes refuses an --out / OUT that exists as something it would
replace: exit 2, one ``error:`` line naming the path, the existing bytes unchanged."""

import contextlib
import io
import os

import pytest

from mammodino.cli import main
from support import weight_cases as wc


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture()
def ckpt(tmp_path):
    return wc.write_training_checkpoint(tmp_path / "run" / "checkpoint-last.safetensors")


def _cases(tmp, ckpt, target):
    return {
        "export": ["export", str(ckpt), str(target)],
        "embed": ["embed", str(ckpt), str(tmp / "cache"), str(target), "--no-progress"],
        "attention": ["attention", str(ckpt), "someid", "--cache", str(tmp / "cache"), "--out", str(target)],
        "preview": ["preview", str(tmp / "cache"), "--out", str(target)],
        "probe": ["probe", str(tmp / "f.npz"), "--task", "phantom-lesion", "--out", str(target)],
        "report": ["report", str(ckpt.parent), "--out", str(target)],
    }


@pytest.mark.parametrize("command", ["export", "embed", "attention", "preview", "probe", "report"])
def test_an_existing_file_as_out_is_refused_and_kept(tmp_path, ckpt, command):
    target = tmp_path / "mine.npz"
    target.write_bytes(b"precious bytes")
    (tmp_path / "cache").mkdir()
    rc, _out, err = _run(_cases(tmp_path, ckpt, target)[command])
    assert rc == 2, err
    assert err.startswith("error: ") and str(target) in err and "Traceback" not in err, err
    assert "nothing is overwritten" in err
    assert target.read_bytes() == b"precious bytes"


@pytest.mark.parametrize("command", ["embed", "preview", "report"])
def test_a_folder_or_fifo_where_a_file_goes_is_refused(tmp_path, ckpt, command):
    (tmp_path / "cache").mkdir()
    for target in (tmp_path / "dir.npz", tmp_path / "fifo.npz"):
        target.mkdir() if target.name.startswith("dir") else os.mkfifo(target)
        rc, _out, err = _run(_cases(tmp_path, ckpt, target)[command])
        assert rc == 2 and str(target) in err and "already exists" in err, err


def test_export_refuses_a_folder_holding_an_export(tmp_path, ckpt):
    rc, out, err = _run(["export", str(ckpt), str(tmp_path / "enc")])
    assert rc == 0, err
    before = (tmp_path / "enc" / "model.safetensors").read_bytes()
    rc, _out, err = _run(["export", str(ckpt), str(tmp_path / "enc"), "--timm"])
    assert rc == 2 and "already holds config.json, model.safetensors" in err, err
    assert (tmp_path / "enc" / "model.safetensors").read_bytes() == before


def test_report_regenerates_its_own_page_but_no_other_file(tmp_path, ckpt):
    from mammodino.eval.report import is_mammodino_report

    run = ckpt.parent
    rc, _out, err = _run(["report", str(run)])
    assert rc == 0, err
    assert is_mammodino_report(run / "report.html")
    rc, _out, err = _run(["report", str(run)])
    assert rc == 0, err  # our own page, rebuilt from the run
    (run / "report.html").write_text("<html>my notes</html>")
    rc, _out, err = _run(["report", str(run)])
    assert rc == 2 and "already exists" in err
    assert (run / "report.html").read_text() == "<html>my notes</html>"
