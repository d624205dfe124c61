"""Label tables are streamed with the csv module, and every malformed table or label value
is a UserError naming the file, the line and the value."""

import os
import subprocess
import sys

import pytest

from mammodino.errors import UserError
from mammodino.eval.tasks import load_task, read_table

RSNA_HEAD = "site_id,patient_id,image_id,laterality,view,age,cancer,density\n"


def _rsna(tmp_path, rows, name="train.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_text(RSNA_HEAD + "".join(rows), encoding=encoding)
    return path


def test_the_real_rsna_table_still_loads(label_tables_dir):
    task = load_task("rsna-cancer", label_tables_dir / "rsna_train.csv")
    assert len(task.rows) > 700 and task.n_table_rows == len(task.rows) + task.n_no_label


def test_utf16_with_bom_reads_like_utf8(label_tables_dir, tmp_path):
    text = (label_tables_dir / "rsna_train.csv").read_text(encoding="utf-8-sig")
    (tmp_path / "u16.csv").write_text(text, encoding="utf-16")
    a = load_task("rsna-cancer", label_tables_dir / "rsna_train.csv")
    b = load_task("rsna-cancer", tmp_path / "u16.csv")
    assert [(r.key, r.label) for r in a.rows] == [(r.key, r.label) for r in b.rows]


@pytest.mark.parametrize("value", ["yes", "no", "2", "positive"])
def test_unreadable_label_values_name_file_line_and_value(tmp_path, value):
    path = _rsna(tmp_path, ["2,10006,1,L,CC,61,0,\n", f"2,10006,2,L,MLO,61,{value},\n"])
    with pytest.raises(UserError, match=rf"train.csv line 3: column 'cancer' has the value '{value}'"):
        load_task("rsna-cancer", path)


def test_nan_and_empty_are_missing_labels(tmp_path):
    path = _rsna(tmp_path, ["2,10006,1,L,CC,61,0,\n", "2,10006,2,L,MLO,61,nan,\n", "2,10006,3,R,CC,61,,\n",
                            "2,10007,4,R,CC,60,1,\n"])
    task = load_task("rsna-cancer", path)
    assert [r.label for r in task.rows] == [0, 1] and task.n_no_label == 2


def test_extra_fields_are_an_error_with_the_line(tmp_path):
    path = _rsna(tmp_path, ["2,10006,1,L,CC,61,0,\n", "2,10006,2,L,MLO,61,0,,surprise,more\n"])
    with pytest.raises(UserError, match=r"line 3: 10 fields, the header has 8 \(extra value 'surprise'\)"):
        load_task("rsna-cancer", path)


def test_an_unbalanced_quote_does_not_swallow_rows(tmp_path):
    rows = ["2,10006,1,L,CC,61,0,\n", '2,10006,"2,L,MLO,61,0,\n'] + [f"2,1{i:04d},{i + 3},L,CC,61,0,\n" for i in range(238)]
    path = _rsna(tmp_path, rows)
    with pytest.raises(UserError, match=r"line 3: .*(quoted field runs over|not readable as CSV)"):
        load_task("rsna-cancer", path)


def test_a_folder_or_fifo_is_not_a_table(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserError, match="not a regular file"):
        load_task("rsna-cancer", tmp_path / "dir.csv")
    os.mkfifo(tmp_path / "fifo.csv")
    with pytest.raises(UserError, match="not a regular file"):  # and does not block on the FIFO
        load_task("generic", tmp_path / "fifo.csv", path_col="a", label_col="b")
    with pytest.raises(UserError, match="not a regular file"):
        load_task("mias-density", tmp_path / "fifo.csv")


def test_binary_junk_is_refused(tmp_path):
    (tmp_path / "junk.csv").write_bytes(b"image_id,cancer\n\x00\x01\x02\x00")
    with pytest.raises(UserError, match="NUL bytes"):
        read_table(tmp_path / "junk.csv")



def test_a_binary_header_is_not_echoed_to_the_terminal(tmp_path):
    (tmp_path / "junk.csv").write_bytes(bytes(range(1, 9)) + "\ufffd\u0007é".encode() + b"\n1\n")
    with pytest.raises(UserError, match="no column") as err:
        load_task("rsna-cancer", tmp_path / "junk.csv")
    assert all(ch.isprintable() and ch != "\ufffd" for ch in str(err.value)) and "é" in str(err.value)


STREAM = """
import resource, sys
from mammodino.eval.tasks import read_table
header, rows = read_table(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = sum(1 for _ in rows)
print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def test_memory_does_not_grow_with_the_table(tmp_path):
    path = tmp_path / "big.csv"
    line = "2,{0},{0}000,L,CC,61,0,B,some free text column that makes the row longer\n"
    with path.open("w") as fh:
        fh.write(RSNA_HEAD.rstrip("\n") + ",notes\n")
        for i in range(300_000):
            fh.write(line.format(i))
    assert path.stat().st_size > 20e6
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", STREAM, str(path)], capture_output=True, text=True, check=True, env=env)
    n, grown_mb = out.stdout.split()
    assert int(n) == 300_000
    assert float(grown_mb) < 5, grown_mb  # a whole-file read grew by ~19x the 20 MB file


LOAD = """
import resource, sys
from mammodino.eval.tasks import load_task
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
task = load_task("rsna-cancer", sys.argv[1])
print(len(task.rows), task.n_table_rows, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def test_a_loaded_task_holds_a_small_row_per_labelled_row_and_reads_the_file_once(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write(RSNA_HEAD)
        for i in range(300_000):
            fh.write(f"2,{10000 + i // 4},{i}000,{'LR'[i % 2]},{('CC', 'MLO')[i % 2]},61,{i % 2},{'ABCD'[i % 4]}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, check=True, env=env)
    n, n_table, grown_mb = out.stdout.split()
    assert int(n) == int(n_table) == 300_000
    assert float(grown_mb) < 300_000 * 300 / 2**20, grown_mb  # slotted rows, interned texts: ~170 B a row


def test_a_bad_value_near_the_top_of_a_big_table_fails_before_reading_the_rest(tmp_path, monkeypatch):
    from mammodino.eval.tasks import base

    path = _rsna(tmp_path, ["2,10006,1,L,CC,61,0,\n", "2,10006,2,L,MLO,61,maybe,\n"] + ["2,10007,3,R,CC,60,1,\n"] * 50_000)
    seen = []
    real = base.TableRows.__iter__

    def counting(self):
        for row in real(self):
            seen.append(row.line)
            yield row

    monkeypatch.setattr(base.TableRows, "__iter__", counting)
    with pytest.raises(UserError, match=r"line 3: column 'cancer' has the value 'maybe'"):
        load_task("rsna-cancer", path)
    assert seen == [2, 3]
