"""Patient data through *names*: an archive laid out as ``MRN/ACCESSION/MRN_NAME_n.dcm``,
with a per-slice DBT folder named after the patient and 24 identifying header fields
planted. index -> pretrain -> embed -> probe (joined by path through the key file) ->
attention (by cache id and by a file path) -> report; then every byte written outside the
private key file, every output file name and everything printed is searched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import stat

import numpy as np
import pydicom
import pytest
import torch

from mammodino.cli import main
from mammodino.privacy import key_path_for, pseudonym, read_key_file
from support.scan import files_under, find_strings

from support.micro import MICRO

MRN, ACC, NAME = "MRN12345678", "ACC99887766", "DOE_JANE"
HEADER_PLANTS = {
    "PatientName": "ZEBRA^QUENTIN", "PatientID": "PID-PLANT-7781", "PatientBirthDate": "19230417",
    "OtherPatientIDs": "OPID-PLANT-5512", "PatientAddress": "17 PLANTED LANE", "PatientTelephoneNumbers": "555-0199-PLANT",
    "AccessionNumber": "ACCPLANT4471", "StudyID": "STUDYPLANT88", "InstitutionName": "PLANTED GENERAL HOSPITAL",
    "InstitutionAddress": "99 HOSPITAL PLANT ROAD", "ReferringPhysicianName": "REFPLANT^DOCTOR",
    "PerformingPhysicianName": "PERFPLANT^DOCTOR", "OperatorsName": "OPERPLANT^TECH", "StationName": "STATIONPLANT7",
    "DeviceSerialNumber": "SERIALPLANT5531", "InstitutionalDepartmentName": "DEPTPLANT-MAMMO",
    "RequestingPhysician": "REQPLANT^DOCTOR", "PatientMotherBirthName": "MOTHERPLANT",
    "MilitaryRank": "RANKPLANT", "EthnicGroup": "ETHNICPLANT", "Occupation": "OCCUPLANT",
    "AdditionalPatientHistory": "HISTORYPLANT-LUMP", "RequestedProcedureDescription": "PROCPLANT-SCREEN",
    "StudyDescription": "STUDYDESCPLANT",
}
NEEDLES = [MRN, ACC, NAME, "DOE^JANE", "DOE JANE"] + [v for v in HEADER_PLANTS.values()] + ["ZEBRA", "QUENTIN"]


def _plant(ds):
    for key, value in HEADER_PLANTS.items():
        setattr(ds, key, value)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from support.dicom_files import write_dbt_series
    from mammodino.synth.generate import generate_phantoms

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("names")
    gen, src, cache, run = root / "gen", root / "archive", root / "cache", root / "run"
    emb = root / "embeddings" / "features.npz"
    emb.parent.mkdir()
    generate_phantoms(gen, n_ffdm=12, n_dbt=1, seed=7, ffdm_shape=(256, 200), dbt_shape=(10, 128, 100))
    table = []
    for n, row in enumerate(csv.DictReader((gen / "labels.csv").open())):
        ds = pydicom.dcmread(gen / row["path"])
        _plant(ds)
        if row["kind"] == "ffdm":
            rel = f"{MRN}{n % 3}/{ACC}/{MRN}{n % 3}_{NAME}_{n}.dcm"
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(src / rel)
            table.append({"path": rel, "lesion": row["lesion"], "patient": f"{MRN}{n % 3}"})
        else:  # the same volume as one file per slice, in a folder named after the patient
            vol = ds.pixel_array.astype(np.uint16)
            paths = write_dbt_series(src / f"{MRN}_{NAME}_DBT", vol, laterality=row["laterality"], view=row["view"])
            for p in paths:
                sl = pydicom.dcmread(p)
                _plant(sl)
                sl.save_as(p)
    with (root / "labels.csv").open("w", newline="") as fh:  # the owner's table names the files
        writer = csv.DictWriter(fh, fieldnames=["path", "lesion", "patient"])
        writer.writeheader()
        writer.writerows(table)
    printed = []

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
        printed.append(out.getvalue() + err.getvalue())
        assert rc == 0, (argv, printed[-1][-2000:])

    cli("index", src, cache, "--size", "128", "--workers", "1", "--no-progress")
    cli("pretrain", "--config", "cpu-tiny", "--data", cache, "--out", run, "--no-progress", *MICRO,
        "train.steps=2", "train.checkpoint_every=1")
    cli("embed", run, cache, emb, "--resolution", "64", "--no-progress", "--threads", "1")
    cli("probe", emb, "--task", "generic", "--labels", root / "labels.csv", "--path-col", "path",
        "--label-col", "lesion", "--patient-col", "patient", "--out", run / "probe", "--n-boot", "20")
    rows = list(csv.DictReader((cache / "manifest.csv").open()))
    ids = [r["id"] for r in rows if r["status"] == "ok"]
    cli("attention", run, ids[0], ids[-1], "--cache", cache, "--out", run / "attention", "--resolution", "64")
    cli("attention", run, next(src.rglob(f"*{NAME}_0.dcm")), "--out", run / "attention-file", "--resolution", "64")
    cli("report", run)
    return {"root": root, "src": src, "cache": cache, "run": run, "emb": emb, "rows": rows, "printed": printed}


def test_the_archive_really_names_the_patient(pipeline):
    assert find_strings([pipeline["src"]], [MRN, "ZEBRA^QUENTIN", "PLANTED GENERAL HOSPITAL"])
    assert any(MRN in str(p) for p in pipeline["src"].rglob("*.dcm"))
    ok = [r for r in pipeline["rows"] if r["status"] == "ok"]
    assert len(ok) == 13 and {r["kind"] for r in ok} == {"ffdm", "dbt"}  # 12 FFDM + the per-slice volume


def test_no_name_or_header_value_in_any_byte_written(pipeline):
    roots = [pipeline["cache"], pipeline["run"], pipeline["emb"].parent]
    assert len(files_under(roots)) > 30
    hits = find_strings(roots, NEEDLES)
    assert hits == [], hits[:20]
    for root in roots:
        for path in root.rglob("*"):
            assert not any(n.lower() in str(path.relative_to(root)).lower() for n in NEEDLES), path
    text = "\n".join(pipeline["printed"])
    assert "done: step 2" in text
    for needle in NEEDLES:
        assert needle.lower() not in text.lower(), needle


def test_the_salt_is_not_in_the_cache(pipeline):
    key = read_key_file(key_path_for(pipeline["cache"]))
    assert len(key.salt) >= 32
    assert find_strings([pipeline["cache"], pipeline["run"], pipeline["emb"].parent], [key.salt]) == []
    # with the key, the owner gets the pseudonyms back; without it the cache cannot be reversed
    ok = [r for r in pipeline["rows"] if r["status"] == "ok"]
    raw = str(pydicom.dcmread(next(pipeline["src"].rglob("*.dcm")), stop_before_pixels=True).PatientID)
    assert {r["patient_key"] for r in ok} == {pseudonym(raw, key.salt)}


def test_the_key_file_is_private_and_maps_back(pipeline):
    path = key_path_for(pipeline["cache"])
    assert path.parent == pipeline["cache"].parent  # beside the cache, not in it
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = read_key_file(path)
    ok = [r for r in pipeline["rows"] if r["status"] == "ok"]
    sources = {key.source(r["id"]) for r in ok}
    assert f"{MRN}_{NAME}_DBT" in sources and all((pipeline["src"] / s).exists() for s in sources)
    assert all(r["source"] == "" and r["stem"] == r["id"] for r in pipeline["rows"])


def test_the_probe_joined_labels_through_the_key_file(pipeline):
    import json

    results = json.loads((pipeline["run"] / "probe" / "results.json").read_text())
    entries = results if isinstance(results, list) else results.get("results", [])
    assert entries and max(e.get("n_test", 0) + e.get("n_train", 0) for e in entries) >= 8
