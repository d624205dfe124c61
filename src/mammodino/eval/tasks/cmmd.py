"""CMMD (The Chinese Mammography Database, ``CMMD_clinicaldata_revision``).

One row per breast: ``ID1`` (patient, e.g. D1-0001), ``LeftRight`` (L/R), ``abnormality``,
``classification`` (Benign/Malignant), ``subtype``. The DICOMs are named ``1-1.dcm``,
``1-2.dcm`` under a folder per patient, so a row's images are found by patient and side:
the manifest's pseudonymous ``patient_key`` (the same salted hash of the DICOM PatientID,
which is ``ID1``) or, failing that, a folder named ``ID1`` in the manifest ``source`` path,
together with the manifest laterality.
"""

from __future__ import annotations

from mammodino.eval.tasks.base import (
    LabelRow,
    TaskLabels,
    aggregate_max,
    find_col,
    norm_laterality,
    read_table,
    single_table,
)

CLASSES = ["benign", "malignant"]


def malignant(labels) -> TaskLabels:
    path = single_table(labels, "cmmd-malignant")
    header, table = read_table(path)
    c_id = find_col(header, "ID1", table=str(path))
    c_lat = find_col(header, "LeftRight", table=str(path))
    c_cls = find_col(header, "classification", table=str(path))
    rows, no_label = [], 0
    for rec in table:
        v = rec[c_cls].strip().lower()
        lat = norm_laterality(rec[c_lat])
        if v not in CLASSES or not lat:
            no_label += 1
            continue
        rows.append(LabelRow(key=rec[c_id], label=CLASSES.index(v), patient=rec[c_id], laterality=lat, key_kind="patient"))
    return TaskLabels("cmmd-malignant", CLASSES, aggregate_max(rows), str(path), len(table), no_label)
