"""A hand-edited or downloaded manifest can only make mammodino read regular .npy files
inside its own cache, and every problem is named before any work starts."""

import csv
import os
import shutil
import threading

import numpy as np
import pytest

from mammodino.data.cache import open_cache, read_manifest
from mammodino.errors import UserError


@pytest.fixture
def cache(phantom_cache, tmp_path):
    return shutil.copytree(phantom_cache, tmp_path / "cache")


def _rows(cache):
    with (cache / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def _write(cache, header, rows):
    with (cache / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _edit(cache, index, **changes):
    header, rows = _rows(cache)
    ok = [r for r in rows if r["status"] == "ok"]
    ok[index].update(changes)
    _write(cache, header, rows)


@pytest.mark.parametrize("value, why", [
    ("/etc/passwd", "absolute path"),
    ("../outside/x.npy", "leaves the cache"),
    ("../../../../etc/passwd", "leaves the cache"),
    ("images/../../x.npy", "leaves the cache"),
])
def test_paths_outside_the_cache_are_refused(cache, tmp_path, value, why):
    _edit(cache, 1, image_file=value)
    with pytest.raises(UserError, match=why) as exc:
        open_cache(cache)
    assert "line 3" in str(exc.value) and "image_file" in str(exc.value)


def test_a_symlink_out_of_the_cache_is_refused(cache, tmp_path):
    secret = tmp_path / "secret.npy"
    np.save(secret, np.zeros((4, 4), np.uint16))
    (cache / "images" / "link.npy").symlink_to(secret)
    _edit(cache, 0, mask_file="images/link.npy")
    with pytest.raises(UserError, match="resolves outside the cache"):
        open_cache(cache)


def test_a_fifo_is_refused_without_opening_it(cache):
    fifo = cache / "images" / "fifo.npy"
    os.mkfifo(fifo)
    _edit(cache, 0, image_file="images/fifo.npy")
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("exc", _catch(lambda: open_cache(cache))), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading the manifest blocked on a FIFO"
    assert "not a regular file" in str(result["exc"])


def _catch(fn):
    try:
        fn()
    except UserError as exc:
        return exc
    return None


def test_every_problem_is_listed_in_one_message(cache):
    header, rows = _rows(cache)
    ok = [r for r in rows if r["status"] == "ok"]
    ok[0]["cache_height"] = "tall"
    ffdm = next(r for r in ok if r["kind"] == "ffdm" and r is not ok[0])
    ffdm["kind"] = "dbt"
    ok[-1]["kind"] = "mri"
    (cache / ok[3]["image_file"]).unlink()  # deleted after the first row
    _write(cache, header, rows)
    with pytest.raises(UserError) as exc:
        open_cache(cache)
    text = str(exc.value)
    assert "4 problem(s)" in text
    assert "cache_height 'tall' is not a whole number" in text
    assert "kind dbt needs a 3-D image" in text
    assert "kind 'mri' is not one of ffdm, dbt" in text
    assert "is missing" in text


def test_missing_column(cache):
    header, rows = _rows(cache)
    _write(cache, [h for h in header if h != "kind"], [{k: v for k, v in r.items() if k != "kind"} for r in rows])
    with pytest.raises(UserError, match="missing column.*kind"):
        read_manifest(cache)


def test_extra_fields_in_a_row(cache):
    lines = (cache / "manifest.csv").read_text().splitlines()
    lines[2] += ",extra"
    (cache / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="line 3: .*fields, the header has"):
        read_manifest(cache)


def test_pretrain_and_embed_refuse_before_work(cache, tmp_path, capsys):
    from mammodino.cli import main

    _edit(cache, 0, image_file="../../../../etc/passwd")
    assert main(["pretrain", "--data", str(cache), "--out", str(tmp_path / "run"), "--no-progress",
                 "train.steps=1"]) == 2
    err = capsys.readouterr().err
    assert "leaves the cache" in err and "root:" not in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_clean_cache_reads(cache):
    images = open_cache(cache)
    assert images and images[0].breast_mask().ndim == 2
