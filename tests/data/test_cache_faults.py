"""Hostile caches (tests/support/cache_faults.py) through ``embed`` in this process: one clear
error naming the manifest, or (duplicates, thin volumes) a completed run; nothing outside the
cache is ever read. And images that vanish while a run reads the cache."""

import contextlib
import io
import os
import shutil

import numpy as np
import pytest

from mammodino.cli import main
from mammodino.config import load_config
from mammodino.data.cache import read_manifest
from mammodino.data.dataset import PretrainDataset
from support import cache_faults as cf
from support.micro import MICRO


@pytest.fixture(scope="module")
def small_cache(phantom_cache, tmp_path_factory):
    return phantom_cache


@pytest.mark.parametrize("name", sorted(cf.MANIFEST_CASES))
def test_hostile_manifest_through_embed(small_cache, tmp_path, name):
    cache = cf.make_case(name, small_cache, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["embed", "--random-init", str(cache), str(tmp_path / "f.npz"), "--no-progress", "--resolution", "32"])
    text = out.getvalue() + err.getvalue()
    assert cf.SECRET.decode() not in text
    if name in cf.MAY_COMPLETE:
        assert rc == 0, text
    else:
        assert rc == 2 and err.getvalue().startswith("error: ") and str(cache) in err.getvalue(), text
        assert not (tmp_path / "f.npz").exists()


def test_repeated_rows_are_left_out_and_reported(small_cache, tmp_path, capsys):
    cache = cf.make_case("duplicate id", small_cache, tmp_path)
    rows = read_manifest(cache)
    assert len(rows) == len({r["id"] for r in rows}) == len(read_manifest(small_cache))
    assert "1 repeated row(s)" in capsys.readouterr().err


def test_a_repeated_id_with_other_values_is_a_problem(small_cache, tmp_path):
    from mammodino.errors import UserError

    cache = cf.make_case("duplicate id", small_cache, tmp_path)
    header, rows = cf._rows(cache)
    rows[-1]["tissue_fraction"] = "0.123"  # the repeated row now disagrees with the first
    cf._write(cache, header, rows)
    with pytest.raises(UserError, match="repeats line 2 with other values"):
        read_manifest(cache)


def _dataset(cache):
    return PretrainDataset(cache, load_config("cpu-tiny", MICRO))


@pytest.mark.parametrize("damage", ["deleted", "truncated", "fifo"])
def test_an_image_that_vanishes_mid_run_is_reported_and_stood_in_for(small_cache, tmp_path, capsys, damage):
    cache = tmp_path / "cache"
    shutil.copytree(small_cache, cache)
    ds = _dataset(cache)  # the manifest was checked here: everything was fine
    victim = int(ds.ffdm_indices[0])
    path = cache / ds.item(victim).row["image_file"]
    os.remove(path)
    if damage == "truncated":
        path.write_bytes(b"\x93NUMPY")
    elif damage == "fifo":
        os.mkfifo(path)
    sample = ds[victim]
    assert sample["index"] != victim and not sample["is_dbt"]
    assert np.isfinite(sample["global_crops"][0].numpy()).all()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and ds.item(victim).row["image_file"] in err and "stands in" in err
    ds[victim]
    assert "warning" not in capsys.readouterr().err  # reported once


def test_every_image_gone_stops_with_a_clear_error(small_cache, tmp_path):
    from mammodino.errors import UserError

    cache = tmp_path / "cache"
    shutil.copytree(small_cache, cache)
    ds = _dataset(cache)
    shutil.rmtree(cache / "images")
    with pytest.raises(UserError, match="could not be read"):
        ds[int(ds.ffdm_indices[0])]
