"""Patient data stays in the DICOM headers: the whole pipeline on phantoms whose headers say
PatientName DOE^JANE and PatientID MRN-4242-XYZ<n>, then every byte it wrote is searched.

index -> pretrain (2 micro steps) -> embed -> probe (phantom-lesion, whose label table
does carry the raw ids) -> attention maps -> report. Searched: the cache (manifest, .npy,
salt), the run folder (safetensors, metrics, config, PNGs, probe results, attention PNGs,
report.html with its base64 images), the embeddings NPZ (each member decompressed), PNG
text chunks, and everything the commands printed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import zipfile

import pytest
import torch

from mammodino.cli import main
from mammodino.privacy import pseudonym
from support.scan import files_under, find_strings

from support.micro import MICRO

NAME, ID_PREFIX = "DOE^JANE", "MRN-4242-XYZ"
NEEDLES = [NAME, "DOE JANE", "DOE=JANE", ID_PREFIX, "MRN-4242", "MRN4242"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from mammodino.synth.generate import generate_phantoms

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("privacy")
    src, cache, run = root / "dicoms", root / "cache", root / "run"
    emb = root / "embeddings" / "features.npz"
    emb.parent.mkdir()
    generate_phantoms(src, n_ffdm=12, n_dbt=2, seed=5, ffdm_shape=(256, 200), dbt_shape=(12, 128, 100),
                      patient_name=NAME, patient_id_prefix=ID_PREFIX)
    printed = []

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
        printed.append(out.getvalue() + err.getvalue())
        assert rc == 0, (argv, printed[-1][-2000:])
        return rc

    cli("index", src, cache, "--size", "128", "--workers", "1", "--no-progress")
    cli("pretrain", "--config", "cpu-tiny", "--data", cache, "--out", run, "--no-progress", *MICRO,
        "train.steps=2", "train.checkpoint_every=1")
    cli("embed", run, cache, emb, "--resolution", "64", "--no-progress", "--threads", "1")
    cli("probe", emb, "--task", "phantom-lesion", "--labels", src / "labels.csv", "--out", run / "probe-lesion",
        "--n-boot", "20")
    rows = list(csv.DictReader((cache / "manifest.csv").open()))
    ids = [r["id"] for r in rows if r["status"] == "ok"][:2]
    cli("attention", run, *ids, "--cache", cache, "--out", run / "attention", "--resolution", "64")
    dicom = next((src / "ffdm").glob("*.dcm"))
    cli("attention", run, dicom, "--out", run / "attention-dicom", "--resolution", "64")
    cli("report", run)
    return {"src": src, "cache": cache, "run": run, "emb": emb, "rows": rows, "printed": printed}


def test_the_phantom_headers_really_carry_the_patient(pipeline):
    import pydicom

    ds = pydicom.dcmread(next((pipeline["src"] / "ffdm").glob("*.dcm")), stop_before_pixels=True)
    assert str(ds.PatientName) == NAME and str(ds.PatientID).startswith(ID_PREFIX)
    assert ID_PREFIX in (pipeline["src"] / "labels.csv").read_text()  # the probe's table has them


def test_every_stage_wrote_its_files(pipeline):
    run = pipeline["run"]
    for path in (run / "checkpoint-last.safetensors", run / "metrics.jsonl", run / "config.yaml",
                 run / "probe-lesion" / "results.json", run / "report.html", pipeline["emb"],
                 pipeline["cache"] / "manifest.csv"):
        assert path.is_file() and path.stat().st_size > 0, path
    assert list((run / "attention").glob("*.png")) and list((run / "attention-dicom").glob("*.png"))


def test_the_search_finds_what_it_looks_for(pipeline, tmp_path):
    """The scanner is not blind: it finds the name in the DICOMs, inside a compressed NPZ
    member, in a PNG's compressed text chunk and in a base64 image of an HTML page."""
    import base64

    import numpy as np
    from PIL import Image, PngImagePlugin

    assert find_strings([pipeline["src"] / "ffdm"], [NAME])
    np.savez_compressed(tmp_path / "a.npz", x=np.array(["xx " + NAME]))
    assert NAME.encode() not in (tmp_path / "a.npz").read_bytes()  # really compressed
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", ID_PREFIX, zip=True)
    Image.new("L", (4, 4)).save(tmp_path / "b.png", pnginfo=info)
    png = (tmp_path / "b.png").read_bytes()
    (tmp_path / "c.html").write_text(f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    hits = {(w.split("/")[-1].split("#")[0].split("!")[0], n) for w, n in find_strings([tmp_path], [NAME, ID_PREFIX])}
    assert hits == {("a.npz", NAME), ("b.png", ID_PREFIX), ("c.html", ID_PREFIX)}
    assert zipfile.is_zipfile(tmp_path / "a.npz")


def test_base64_letters_that_spell_a_name_by_chance_are_not_a_hit(tmp_path):
    """A report's base64 images are searched decoded: letters that happen to spell a needle
    (case-insensitively, as in a real CI failure on 'ZEBRA') are not a leak, a plain-text
    needle beside them still is."""
    import base64

    chance = base64.b64decode("zEbRaQQQ")  # bytes whose base64 spells the needle
    uri = f'<img src="data:image/png;base64,{base64.b64encode(chance).decode()}">'
    assert "zebra" in uri.lower()
    (tmp_path / "r.html").write_text(uri)
    assert find_strings([tmp_path], ["ZEBRA"]) == []
    (tmp_path / "r.html").write_text(uri + "<p>zebra</p>")
    assert [n for _, n in find_strings([tmp_path], ["ZEBRA"])] == ["ZEBRA"]


def test_no_patient_name_or_id_in_any_written_byte(pipeline):
    roots = [pipeline["cache"], pipeline["run"], pipeline["emb"].parent]
    searched = files_under(roots)
    assert len(searched) > 30  # cache images and masks, run outputs, embeddings
    hits = find_strings(roots, NEEDLES)
    assert hits == [], hits[:20]


def test_nothing_printed_names_the_patient(pipeline):
    text = "\n".join(pipeline["printed"])
    assert "done: step 2" in text and "embedded" in text  # the output was captured
    for needle in NEEDLES:
        assert needle.lower() not in text.lower(), needle


def test_no_output_file_is_named_after_the_patient(pipeline):
    for root in (pipeline["cache"], pipeline["run"], pipeline["emb"].parent):
        for path in root.rglob("*"):
            assert not any(n.lower() in str(path.relative_to(root)).lower() for n in NEEDLES), path


def test_patient_key_is_a_salted_pseudonym_not_the_raw_id(pipeline):
    import pydicom

    from mammodino.data.cache import with_sources
    from mammodino.privacy import load_key_for_cache

    salt = load_key_for_cache(pipeline["cache"]).salt
    ok = [r for r in with_sources(pipeline["cache"], pipeline["rows"]) if r["status"] == "ok"]
    assert len(ok) == 14
    by_key = {}
    for row in ok:
        raw = str(pydicom.dcmread(pipeline["src"] / row["source"], stop_before_pixels=True).PatientID)
        key = row["patient_key"]
        assert re.fullmatch(r"[0-9a-f]{16}", key), key
        assert key != raw and raw not in key and key == pseudonym(raw, salt)
        by_key.setdefault(key, set()).add(raw)
    assert all(len(raws) == 1 for raws in by_key.values())  # one key per patient
    assert len(by_key) >= 4  # 3 FFDM patients + DBT patients: keys differ between patients
