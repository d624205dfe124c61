"""metrics.jsonl on resume: bad lines are reported and set aside, never a traceback, never lost."""

import os

import pytest

from mammodino.errors import UserError
from mammodino.train.metrics_log import MetricsLog, read_metrics

GOOD = b'{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "loss": 1.2}\n'


def test_lines_after_the_resumed_step_are_dropped_and_bad_ones_set_aside(tmp_path, capsys):
    bad = [b"[1, 2]", b'"text"', b'{"step": "x"}', b"\xff\xfe", b"7", b'{"loss": 3}', b'{"step": true}', b"[" * 50_000]
    (tmp_path / "metrics.jsonl").write_bytes(GOOD[:50] + b"\n".join(bad) + b"\n" + GOOD[50:] + b'{"step": 4, "lo')
    log = MetricsLog(tmp_path, start_step=2)
    log.write({"step": 3, "loss": 1.0})
    log.close()
    rows, skipped = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["loss"] == 1.0 and skipped == 0
    side = (tmp_path / "metrics.jsonl.rejected").read_bytes().split(b"\n")[:-1]
    assert side == bad  # every rejected line kept, byte for byte; the cut last line dropped
    err = capsys.readouterr().err
    assert "metrics.jsonl: 8 line(s)" in err and "line 3, 4, 5" in err
    assert log.rejected_lines == list(range(3, 11))


def test_a_clean_log_makes_no_side_file(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(GOOD)
    MetricsLog(tmp_path, start_step=3).close()
    assert (tmp_path / "metrics.jsonl").read_bytes() == GOOD
    assert not (tmp_path / "metrics.jsonl.rejected").exists()


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_a_fifo_or_folder_as_the_log_is_a_clear_error(tmp_path, kind):
    path = tmp_path / "metrics.jsonl"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    with pytest.raises(UserError, match="not a regular file"):
        MetricsLog(tmp_path, start_step=1)
    with pytest.raises(UserError, match="not a regular file"):
        read_metrics(path)


def test_read_metrics_passes_over_binary_and_nested_lines(tmp_path):
    (tmp_path / "m.jsonl").write_bytes(b"\x00\xff\n" + b"[" * 100_000 + b"\n" + GOOD)
    rows, _ = read_metrics(tmp_path / "m.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
