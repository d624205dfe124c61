"""INbreast (``INbreast.csv``, semicolon-separated).

Columns: ``Patient ID`` (published as "removed"), ``Laterality``, ``View``,
``File Name`` (a number; the DICOM is ``<File Name>_<patient hash>_MG_<side>_<view>_ANON.dcm``,
so the image key is a file-name *prefix*), ``ACR`` (density 1-4) and ``Bi-Rads``
(1, 2, 3, 4a, 4b, 4c, 5, 6; 4a-4c are pooled as 4). With no patient id in the table,
patients are grouped by the manifest's pseudonymous patient key.
"""

from __future__ import annotations

from mammodino.eval.tasks.base import LabelRow, TaskLabels, find_col, norm_laterality, read_table, single_table

DENSITY = ["1", "2", "3", "4"]
BIRADS = ["BI-RADS 1", "BI-RADS 2", "BI-RADS 3", "BI-RADS 4", "BI-RADS 5", "BI-RADS 6"]


def _load(labels, task, classes, column, label_of) -> TaskLabels:
    path = single_table(labels, task)
    header, table = read_table(path)
    c_file = find_col(header, "File Name", table=str(path))
    c_lab = find_col(header, column, table=str(path))
    c_pat = find_col(header, "Patient ID", required=False)
    c_lat = find_col(header, "Laterality", required=False)
    c_view = find_col(header, "View", required=False)
    patients = {rec.get(c_pat, "") for rec in table} if c_pat else set()
    usable_patient = c_pat is not None and len(patients) > 1  # "removed" everywhere = no id
    rows, no_label = [], 0
    for rec in table:
        label = label_of(rec[c_lab])
        key = rec[c_file].strip()
        key = key[:-2] if key.endswith(".0") else key
        if label is None or not key:
            no_label += 1
            continue
        rows.append(
            LabelRow(
                key=key,
                label=label,
                patient=rec[c_pat] if usable_patient else "",
                laterality=norm_laterality(rec.get(c_lat, "")) if c_lat else "",
                view=rec.get(c_view, "") if c_view else "",
                key_kind="prefix",
            )
        )
    return TaskLabels(task, classes, rows, str(path), len(table), no_label)


def _birads(v: str):
    v = v.strip().lower()
    if v[:1].isdigit() and 1 <= int(v[0]) <= 6:
        return int(v[0]) - 1
    return None


def birads(labels) -> TaskLabels:
    return _load(labels, "inbreast-birads", BIRADS, "Bi-Rads", _birads)


def density(labels) -> TaskLabels:
    def label_of(v):
        v = v.strip()
        v = v[:-2] if v.endswith(".0") else v
        return DENSITY.index(v) if v in DENSITY else None

    return _load(labels, "inbreast-density", DENSITY, "ACR", label_of)
