"""generate_phantoms: label table, patient structure, determinism, never clobbering a folder."""

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from synth_helpers import labels_of

from mammodino.errors import UserError
from mammodino.synth.generate import LABEL_COLUMNS, MARKER, generate_phantoms

SMALL = dict(ffdm_shape=(128, 100), dbt_shape=(8, 128, 100))
FOV_SHAPES = dict(ffdm_shape=(256, 200), dbt_shape=(8, 256, 200))
CONTRACT_COLUMNS = [
    "image_id", "path", "patient_id", "laterality", "view", "kind",
    "density", "lesion", "lesion_type", "lesion_box", "lesion_slices", "breast_box", "breast_mask",
]


def _hashes(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_labels_follow_the_contract(phantom_dir):
    header = (phantom_dir / "labels.csv").read_text().splitlines()[0]
    assert header.split(",") == CONTRACT_COLUMNS == LABEL_COLUMNS
    rows = labels_of(phantom_dir)
    assert [r["kind"] for r in rows].count("ffdm") == 12 and [r["kind"] for r in rows].count("dbt") == 2
    for r in rows:
        path = phantom_dir / r["path"]
        assert path.is_file() and path.stem == r["image_id"]
        assert r["path"] == f"{r['kind']}/{r['image_id']}.dcm"
        assert r["laterality"] in ("L", "R") and r["view"] in ("CC", "MLO")
        assert r["density"] in ("A", "B", "C", "D")
        assert r["lesion"] in ("0", "1")
        bx0, by0, bx1, by1 = map(int, r["breast_box"].split())
        assert r["breast_mask"] == ""  # masks are written for film phantoms only
        if r["lesion"] == "0":
            assert r["lesion_type"] == "none" and r["lesion_box"] == "" and r["lesion_slices"] == ""
            continue
        assert r["lesion_type"] in ("mass", "calcification")
        x0, y0, x1, y1 = map(int, r["lesion_box"].split())
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert 0 <= x0 < x1 <= ds.Columns and 0 <= y0 < y1 <= ds.Rows
        assert 0 <= bx0 < bx1 <= ds.Columns and 0 <= by0 < by1 <= ds.Rows
        assert (r["lesion_slices"] != "") == (r["kind"] == "dbt")


def test_patients_have_four_views_and_at_most_one_lesioned_breast(phantom_dir):
    by_patient = {}
    for r in labels_of(phantom_dir):
        if r["kind"] == "ffdm":
            by_patient.setdefault(r["patient_id"], []).append(r)
    assert len(by_patient) == 3
    for rows in by_patient.values():
        views = sorted((r["laterality"], r["view"]) for r in rows)
        assert views == [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
        assert len({r["density"] for r in rows}) == 1
        positive = {r["laterality"] for r in rows if r["lesion"] == "1"}
        assert len(positive) <= 1
        for side in positive:  # both views of that breast, same lesion type
            views = [r for r in rows if r["laterality"] == side]
            assert all(r["lesion"] == "1" for r in views)
            assert len({r["lesion_type"] for r in views}) == 1
    dbt_patients = [r["patient_id"] for r in labels_of(phantom_dir) if r["kind"] == "dbt"]
    assert len(set(dbt_patients)) == 2 and not set(dbt_patients) & set(by_patient)


def test_file_names_never_hold_the_patient_id(phantom_dir):
    ids = {r["patient_id"] for r in labels_of(phantom_dir)}
    for p in phantom_dir.rglob("*"):
        assert not any(pid in p.as_posix() for pid in ids)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate_phantoms(tmp_path / "a", 4, 1, seed=11, **SMALL).parent
    b = generate_phantoms(tmp_path / "b", 4, 1, seed=11, workers=2, **SMALL).parent
    c = generate_phantoms(tmp_path / "c", 4, 1, seed=12, **SMALL).parent
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) == 7  # 4 ffdm + 1 dbt + labels + marker
    assert ha == hb
    assert ha["ffdm/ffdm_000000.dcm"] != hc["ffdm/ffdm_000000.dcm"]


def test_n_ffdm_rounds_up_to_whole_patients(tmp_path):
    rows = labels_of(generate_phantoms(tmp_path / "p", 5, 0, seed=0, **SMALL).parent)
    assert len(rows) == 8 and len({r["patient_id"] for r in rows}) == 2


def test_lesions_in_about_half_the_breasts(tmp_path):
    rows = labels_of(generate_phantoms(tmp_path / "p", 120, 8, seed=1, **SMALL).parent)
    ffdm = [r for r in rows if r["kind"] == "ffdm"]
    positive = sum(r["lesion"] == "1" for r in ffdm) / len(ffdm)
    assert 0.35 <= positive <= 0.5
    dbt = [r for r in rows if r["kind"] == "dbt"]
    assert sum(r["lesion"] == "1" for r in dbt) == 4  # exactly one per shuffled pair
    assert {r["density"] for r in ffdm} == {"A", "B", "C", "D"}
    assert {r["lesion_type"] for r in ffdm} == {"none", "mass", "calcification"}


def test_injected_patient_name_and_id_for_privacy_tests(tmp_path):
    out = generate_phantoms(
        tmp_path / "p", 4, 1, seed=0, patient_name="DOE^JANE", patient_id_prefix="MRN-4242-", **SMALL
    ).parent
    for r in labels_of(out):
        ds = pydicom.dcmread(out / r["path"], stop_before_pixels=True)
        assert str(ds.PatientName) == "DOE^JANE"
        assert ds.PatientID == r["patient_id"] and ds.PatientID.startswith("MRN-4242-")
    names = " ".join(p.as_posix() for p in out.rglob("*"))
    assert "MRN" not in names and "DOE" not in names


def test_refuses_a_folder_with_foreign_files_and_writes_nothing(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match="not written by"):
        generate_phantoms(out, 4, 0, **SMALL)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "precious"


def test_refuses_its_own_output_made_with_other_parameters(tmp_path):
    out = generate_phantoms(tmp_path / "p", 4, 0, seed=0, **SMALL).parent
    before = _hashes(out)
    with pytest.raises(UserError, match="seed: 0 -> 1"):
        generate_phantoms(out, 4, 0, seed=1, **SMALL)
    assert _hashes(out) == before


def test_refuses_a_foreign_file_dropped_into_its_own_output(tmp_path):
    out = generate_phantoms(tmp_path / "p", 4, 0, seed=0, **SMALL).parent
    (out / "ffdm" / "scan.dcm").write_bytes(b"user data")
    with pytest.raises(UserError, match="did not write"):
        generate_phantoms(out, 4, 0, seed=0, **SMALL)
    assert (out / "ffdm" / "scan.dcm").read_bytes() == b"user data"


def test_reuses_a_complete_output_and_repairs_an_incomplete_one(tmp_path):
    out = generate_phantoms(tmp_path / "p", 4, 1, seed=0, **SMALL).parent
    before = _hashes(out)
    mtime = (out / "ffdm" / "ffdm_000001.dcm").stat().st_mtime_ns
    generate_phantoms(out, 4, 1, seed=0, **SMALL)
    assert (out / "ffdm" / "ffdm_000001.dcm").stat().st_mtime_ns == mtime  # untouched
    (out / "ffdm" / "ffdm_000002.dcm").unlink()
    (out / "dbt" / ".dbt_000000.dcm.tmp").write_bytes(b"partial")  # a killed run's temp file
    generate_phantoms(out, 4, 1, seed=0, **SMALL)
    assert _hashes(out) == before
    assert (out / MARKER).exists()


@pytest.mark.parametrize(
    "kwargs",
    [dict(n_ffdm=0, n_dbt=0), dict(n_ffdm=-1, n_dbt=1), dict(n_ffdm=4, n_dbt=0, ffdm_shape=(32, 32)),
     dict(n_ffdm=0, n_dbt=1, dbt_half_angle_deg=60)],
)
def test_bad_arguments_are_user_errors(tmp_path, kwargs):
    with pytest.raises(UserError):
        generate_phantoms(tmp_path / "p", **kwargs)
    assert not (tmp_path / "p").exists()


def _mass_areas(folder: Path) -> dict:
    areas = {}
    for r in labels_of(folder):
        if r["lesion_type"] == "mass":
            x0, y0, x1, y1 = map(int, r["lesion_box"].split())
            areas[r["image_id"]] = (x1 - x0) * (y1 - y0)
    return areas


def test_mass_scale_makes_masses_larger_and_is_part_of_the_output_identity(tmp_path):
    generate_phantoms(tmp_path / "x1", n_ffdm=16, n_dbt=0, seed=5, **SMALL)
    generate_phantoms(tmp_path / "x2", n_ffdm=16, n_dbt=0, seed=5, mass_scale=2.0, **SMALL)
    a1, a2 = _mass_areas(tmp_path / "x1"), _mass_areas(tmp_path / "x2")
    assert a1 and a1.keys() == a2.keys()  # same cases, only the mass size differs
    assert sum(a2.values()) > 2.5 * sum(a1.values())
    with pytest.raises(UserError):  # same folder, other parameters: refused
        generate_phantoms(tmp_path / "x1", n_ffdm=16, n_dbt=0, seed=5, mass_scale=2.0, **SMALL)
    with pytest.raises(UserError, match="mass_scale"):
        generate_phantoms(tmp_path / "x3", n_ffdm=4, n_dbt=0, mass_scale=0.0, **SMALL)


def test_detector_fov_breast_share_and_burned_in_label_outside_the_breast(tmp_path):
    """detector_fov: breast 35-60 % of the image (on average), a bright label and marker in the
    background only, the tissue itself identical in distribution; indexing drops the label."""
    from mammodino.io.dicom_reader import read_dicom
    from mammodino.tissue.segmentation import breast_mask

    generate_phantoms(tmp_path / "plain", n_ffdm=8, n_dbt=1, seed=3, **FOV_SHAPES)
    generate_phantoms(tmp_path / "fov", n_ffdm=8, n_dbt=1, seed=3, detector_fov=True, **FOV_SHAPES)
    shares, marked = [], 0
    for r in labels_of(tmp_path / "fov"):
        pixels = read_dicom(tmp_path / "fov" / r["path"]).pixels  # display sense, [0, 1]
        plain = read_dicom(tmp_path / "plain" / r["path"]).pixels
        if pixels.ndim == 3:
            pixels, plain = pixels[pixels.shape[0] // 2], plain[plain.shape[0] // 2]
        breast = breast_mask(pixels)  # the segmentation keeps the breast, drops the label
        shares.append(float(breast.mean()))
        bright_background = (pixels > 0.8) & (breast == 0)
        marked += int(bright_background.sum() > 20)
        assert ((plain > 0.8) & (breast_mask(plain) == 0)).sum() < 5  # plain phantoms have none
    assert 0.3 < sum(shares) / len(shares) < 0.6
    assert marked == len(shares)  # every image carries its label/marker
    with pytest.raises(UserError):  # part of the output identity
        generate_phantoms(tmp_path / "fov", n_ffdm=8, n_dbt=1, seed=3, **FOV_SHAPES)
