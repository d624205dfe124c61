"""Joining label rows to embedded images: every key kind, and honest counts."""

import csv

import numpy as np
from eval_helpers import CBIS_CALC, CBIS_MASS

from mammodino.data.cache import MANIFEST_COLUMNS
from mammodino.eval.features import FeatureSet
from mammodino.eval.join import join_labels
from mammodino.eval.tasks import load_task
from mammodino.eval.tasks.base import LabelRow, TaskLabels
from mammodino.privacy import SALT_FILE, pseudonym


def _fs(stems, sources=None, patient_keys=None, lats=None, kinds=None, slices=None, n_slices=None, cache=""):
    n = len(stems)
    return FeatureSet(
        features=np.zeros((n, 4), np.float32),
        id=np.array([f"{i:016x}" for i in range(n)]),
        patient_key=np.array(patient_keys or [""] * n),
        laterality=np.array(lats or [""] * n),
        view=np.array([""] * n),
        kind=np.array(kinds or ["ffdm"] * n),
        stem=np.array(stems),
        slice=np.array(slices or [-1] * n),
        n_slices=np.array(n_slices or [1] * n),
        cache=str(cache),
    )


def _write_manifest(folder, fs, sources, salt=None):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        for i, src in zip(fs.id, sources):
            w.writerow({**{c: "" for c in MANIFEST_COLUMNS}, "id": i, "source": src, "status": "ok"})
    if salt:
        (folder / SALT_FILE).write_text(salt)


def test_stem_join_counts_both_directions(label_tables_dir):
    table = load_task("rsna-cancer", label_tables_dir / "rsna_train.csv")
    fs = _fs(["462822612", "50833170", "not-in-table", "also-not"])
    j = join_labels(fs, table)
    assert len(j) == 2 and j.n_label_rows_unmatched == 791 and j.n_features_unlabelled == 2
    assert "791 label rows have no image in the features; 2 features have no label" in j.summary()
    assert set(j.groups) == {"t:10006", "t:10119"}


def test_path_join_cbis_by_first_folder(tmp_path):
    (tmp_path / "mass.csv").write_text(CBIS_MASS)
    (tmp_path / "calc.csv").write_text(CBIS_CALC)
    table = load_task("cbis-pathology", [tmp_path / "mass.csv", tmp_path / "calc.csv"])
    sources = [
        "CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-74994/1.000000-full mammogram images-24515/1-1.dcm",
        "CBIS-DDSM/Mass-Training_P_00004_LEFT_MLO/08-29-2017-DDSM-96009/1.000000-full mammogram images-2/1-1.dcm",
        "CBIS-DDSM/Mass-Training_P_00004_LEFT_MLO_1/08-29-2017-DDSM-1/1.000000-ROI mask images-1/1-1.dcm",
    ]
    fs = _fs(["1-1", "1-1", "1-1"], cache=tmp_path / "cache")
    _write_manifest(tmp_path / "cache", fs, sources)
    j = join_labels(fs, table)
    assert j.index.tolist() == [0, 1] and j.y.tolist() == [1, 1]
    assert j.n_label_rows_unmatched == 2 and j.n_features_unlabelled == 1
    assert set(j.split) == {"train"}


def test_path_join_by_suffix_and_unique_stem(tmp_path):
    rows = [LabelRow(key="/mnt/NAS2/anon/cohort_1/11/1.2.3/1.2.3.4.dcm", label=1, patient="11", key_kind="path"),
            LabelRow(key="elsewhere/x9.png", label=0, patient="12", key_kind="path")]
    table = TaskLabels("t", ["a", "b"], rows)
    fs = _fs(["1.2.3.4", "x9"], cache=tmp_path / "c")
    _write_manifest(tmp_path / "c", fs, ["cohort_1/11/1.2.3/1.2.3.4.dcm", "local/x9.dcm"])
    j = join_labels(fs, table)
    assert j.index.tolist() == [0, 1] and j.y.tolist() == [1, 0]


def test_patient_join_cmmd_by_salted_key_or_folder(tmp_path, label_tables_dir):
    table = load_task("cmmd-malignant", label_tables_dir / "cmmd_clinical.csv")  # D1-0001 R benign ...
    salt = "s3cr3t"
    keys = [pseudonym("D1-0001", salt), pseudonym("D1-0001", salt), pseudonym("D1-0001", salt), ""]
    fs = _fs(["1-1", "1-2", "1-3", "1-1"], patient_keys=keys, lats=["R", "R", "L", "L"], cache=tmp_path / "c")
    _write_manifest(tmp_path / "c", fs, ["x/1-1.dcm", "x/1-2.dcm", "x/1-3.dcm", "CMMD/D1-0004/1.000/1-1.dcm"], salt=salt)
    j = join_labels(fs, table)
    # D1-0001 R: two views matched by key; L of D1-0001 has no row; D1-0004 L matched by folder name
    assert j.index.tolist() == [0, 1, 3]
    assert j.n_features_unlabelled == 1
    assert "D1-0001" not in " ".join(map(str, fs.patient_key))  # only hashes in the features


def test_prefix_join_inbreast(tmp_path):
    (tmp_path / "INbreast.csv").write_text(
        "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n"
        "removed;removed;R;CC;201001;22678622;4;1\nremoved;removed;L;CC;201001;2267;4;2\n")
    table = load_task("inbreast-birads", tmp_path / "INbreast.csv")
    fs = _fs(["22678622_4a9c1b7bcf9f4a1e_MG_R_CC_ANON", "22678622x", "2267_x"], patient_keys=["k1", "k2", "k3"])
    j = join_labels(fs, table)
    assert j.index.tolist() == [0, 2] and j.groups.tolist() == ["k:k1", "k:k3"]  # no table id: cache key


def test_dbt_image_level_uses_middle_slice_and_slice_level_expands(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "image_id,path,patient_id,laterality,view,kind,density,lesion,lesion_type,lesion_box,lesion_slices\n"
        "v1,dbt/v1.dcm,p1,L,CC,dbt,B,1,mass,1 2 3 4,1 2\n"
        "v2,dbt/v2.dcm,p2,R,CC,dbt,C,0,none,,\n"
        "f1,ffdm/f1.dcm,p3,L,CC,ffdm,A,1,mass,1 2 3 4,\n")
    stems = ["v1"] * 5 + ["v2"] * 5 + ["f1"]
    fs = _fs(stems, kinds=["dbt"] * 10 + ["ffdm"], slices=list(range(5)) * 2 + [-1], n_slices=[5] * 10 + [1])
    img = join_labels(fs, load_task("phantom-lesion", tmp_path / "labels.csv"))
    assert img.index.tolist() == [2, 7, 10] and img.y.tolist() == [1, 0, 1]
    sl = join_labels(fs, load_task("phantom-dbt-slice-lesion", tmp_path / "labels.csv"))
    assert sl.index.tolist() == list(range(10))
    assert sl.y.tolist() == [0, 1, 1, 0, 0] + [0] * 5
