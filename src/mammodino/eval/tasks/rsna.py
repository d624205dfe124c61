"""RSNA Screening Mammography (``train.csv``).

One row per image: ``patient_id``, ``image_id`` (the DICOM file stem,
``train_images/<patient_id>/<image_id>.dcm``), ``laterality``, ``view``, ``cancer`` (0/1),
``density`` (A-D, empty for many rows: those rows carry no density label and are counted).
No split column (the competition's test labels are hidden): the probe splits by patient.
"""

from __future__ import annotations

from mammodino.eval.tasks.base import LabelRow, TaskLabels, find_col, is_missing, label_error, read_table, single_table

DENSITY = ["A", "B", "C", "D"]


def _load(labels, task, classes, column, label_of, expected="") -> TaskLabels:
    path = single_table(labels, task)
    header, table = read_table(path)
    c_img = find_col(header, "image_id", table=str(path))
    c_pat = find_col(header, "patient_id", table=str(path))
    c_lab = find_col(header, column, table=str(path))
    c_lat = find_col(header, "laterality", required=False)
    c_view = find_col(header, "view", required=False)
    rows, no_label = [], 0
    for rec in table:
        label = label_of(rec[c_lab])
        if label is None:
            if not is_missing(rec[c_lab]):
                raise label_error(path, rec, c_lab, rec[c_lab], expected or ", ".join(classes))
            no_label += 1
            continue
        rows.append(
            LabelRow(
                key=rec[c_img],
                label=label,
                patient=rec[c_pat],
                laterality=rec.get(c_lat, "") if c_lat else "",
                view=rec.get(c_view, "") if c_view else "",
            )
        )
    return TaskLabels(task, classes, rows, str(path), len(table), no_label)


def _binary(value: str):
    v = value.strip()
    if v in ("0", "1", "0.0", "1.0"):
        return int(float(v))
    return None


def cancer(labels) -> TaskLabels:
    return _load(labels, "rsna-cancer", ["no cancer", "cancer"], "cancer", _binary, "0 or 1 (or empty)")


def density(labels) -> TaskLabels:
    return _load(
        labels,
        "rsna-density",
        DENSITY,
        "density",
        lambda v: DENSITY.index(v.strip().upper()) if v.strip().upper() in DENSITY else None,
        "A, B, C or D (or empty)",
    )
