"""`mammodino qc`: open what it writes (PNG pages, HTML that references them, suspect rows
first) on an indexed film phantom set, with and without the source folder."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PIL import Image

from mammodino.cli import main


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    root = tmp_path_factory.mktemp("qc-cli")
    src, cache = root / "films", root / "cache"
    generate_phantoms(src, n_ffdm=8, n_dbt=0, seed=1, ffdm_shape=(450, 280), film=True)
    index_folder(src, cache, size=128, workers=1, progress=False)
    return src, cache


def _order(out):
    with (out / "sheet.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _with_a_suspect_row(cache, tmp_path):
    """A copy of the cache's manifest in which the last ok row is suspect (whatever tissue/ gives)."""
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    shutil.copy(cache.with_name(cache.name + ".mammodino-key"), copy.with_name("cache.mammodino-key"))
    with (copy / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    last_ok = [r for r in rows if r["status"] == "ok"][-1]  # (a lesion's ROI mask and crop are skipped rows)
    last_ok["qc"], last_ok["qc_reason"] = "suspect", "box is a strip (100% x 8% of the image)"
    with (copy / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return copy, last_ok["id"]


def test_sheet_from_source_images_suspect_first(films, tmp_path, capsys):
    src, cache = films
    cache, suspect_id = _with_a_suspect_row(cache, tmp_path)
    out = tmp_path / "sheet"
    assert main(["qc", str(cache), "--out", str(out), "--src", str(src), "--sample", "5"]) == 0
    printed = capsys.readouterr().out
    assert "open" in printed and "index.html" in printed
    order = _order(out)
    verdicts = [o["qc"] for o in order]
    n_suspect = verdicts.count("suspect")
    assert n_suspect >= 1 and verdicts == ["suspect"] * n_suspect + ["pass"] * (len(order) - n_suspect)
    assert suspect_id in [o["id"] for o in order[:n_suspect]]
    with (cache / "manifest.csv").open(newline="") as fh:
        n_pass = sum(r["qc"] == "pass" for r in csv.DictReader(fh))
    assert len(order) - n_suspect == min(5, n_pass) and all(o["shown"] == "source" for o in order)
    page = (out / "index.html").read_text()
    pngs = sorted(p.name for p in out.glob("page-*.png"))
    assert pngs and all(f"src='{name}'" in page for name in pngs)
    assert "the source images" in page and "box is a strip" in page
    img = np.asarray(Image.open(out / pngs[0]).convert("RGB"))
    assert img.shape[1] == 6 * 240
    first = img[:300, :240]  # the first tile: a suspect row, red box
    red = (first[..., 0] > 200) & (first[..., 1] < 80) & (first[..., 2] < 80)
    assert red.sum() > 100
    last = order[-1]
    assert last["qc"] == "pass", "the set must hold a row that passes for this check"
    k = int(last["tile"]) - 1
    y, x = (k // 6) * 364, (k % 6) * 240
    tile = img[y:y + 300, x:x + 240]
    green = (tile[..., 1] > 180) & (tile[..., 0] < 100) & (tile[..., 2] < 100)
    assert green.sum() > 100
    # no file name or PatientID on the pages
    names = [p.stem for p in (src / "ffdm").glob("*.dcm")]
    assert not any(n in page for n in names) and "P_0000" not in page


def test_sheet_without_source_says_so(films, tmp_path):
    _, cache = films
    out = tmp_path / "sheet"
    assert main(["qc", str(cache), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "the cached images" in page and "no --src given" in page
    assert all(o["shown"] == "cache" for o in _order(out))
    for name in re.findall(r"src='(page-\d+\.png)'", page):
        Image.open(out / name).verify()


def test_sheet_names_what_index_skipped(films, tmp_path):
    """The film set's lesion ROI masks and crops were skipped by index: the page says so."""
    _, cache = films
    with (cache / "manifest.csv").open(newline="") as fh:
        skipped = sum(r["status"] == "skipped" for r in csv.DictReader(fh))
    assert skipped > 0
    out = tmp_path / "sheet"
    assert main(["qc", str(cache), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert f"{skipped} files were skipped by index (not shown)" in page
    assert "an annotation, not a whole mammogram (SeriesDescription names a ROI mask image)" in page


def test_older_cache_without_qc_columns_is_checked_on_the_fly(films, tmp_path):
    from mammodino.data.cache import MANIFEST_COLUMNS

    _, cache = films
    copy, _ = _with_a_suspect_row(cache, tmp_path)
    with (copy / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with (copy / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    before = (copy / "manifest.csv").read_bytes()
    out = tmp_path / "sheet"
    assert main(["qc", str(copy), "--out", str(out), "--sample", "100"]) == 0
    order = _order(out)
    assert len(order) == 8 and all(o["checked_now"] == "1" for o in order)
    assert "checked now" in (out / "index.html").read_text()
    assert (copy / "manifest.csv").read_bytes() == before


def test_bad_arguments_are_one_line_errors(films, tmp_path, capsys):
    _, cache = films
    assert main(["qc", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert main(["qc", str(cache), "--out", str(tmp_path / "o"), "--src", str(tmp_path / "missing")]) == 2
    assert main(["qc", str(cache), "--out", str(tmp_path / "o"), "--sample", "-1"]) == 2
    err = capsys.readouterr().err
    assert "not an indexed cache" in err and "not a folder" in err and "--sample" in err
