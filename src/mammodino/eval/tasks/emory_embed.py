"""EMBED (Emory Breast Imaging Dataset): the clinical table merged with the metadata table
on ``acc_anon`` (as EMBED's own notebooks do), so that each row names an image.

Columns used: ``empi_anon`` (patient), ``anon_dicom_path`` (the image path; its file stem is
the DICOM name), ``ImageLateralityFinal`` (or ``side``), ``ViewPosition``, ``tissueden``
(BI-RADS density 1-4; 5 = male breast, not a density label) and ``asses`` (BI-RADS
assessment letter: A=0 additional evaluation, N=1 negative, B=2 benign, P=3 probably
benign, S=4 suspicious, M=5 highly suggestive, K=6 known malignancy). The clinical table
has one row per finding and side: a finding row whose ``side`` is the other breast
(not B = both) is not this image's assessment. Several findings: the highest BI-RADS
number wins.
"""

from __future__ import annotations

from mammodino.errors import UserError
from mammodino.eval.tasks.base import (
    LabelRow,
    TaskLabels,
    aggregate_max,
    find_col,
    norm_laterality,
    read_table,
    single_table,
)

DENSITY = ["1", "2", "3", "4"]
ASSESSMENT_LETTERS = ["A", "N", "B", "P", "S", "M", "K"]  # index = BI-RADS number
ASSESSMENT = [f"BI-RADS {i} ({c})" for i, c in enumerate(ASSESSMENT_LETTERS)]


def _load(labels, task, classes, label_of, per_side: bool) -> TaskLabels:
    path = single_table(labels, task)
    header, table = read_table(path)
    c_pat = find_col(header, "empi_anon", table=str(path))
    c_img = find_col(header, "anon_dicom_path", "png_path", "path", required=False)
    if c_img is None:
        raise UserError(
            f"{path}: no image path column (anon_dicom_path). EMBED's clinical table is per exam: "
            "merge it with the metadata table on acc_anon first (one row per image)"
        )
    c_lat = find_col(header, "ImageLateralityFinal", "ImageLaterality", required=False)
    c_side = find_col(header, "side", required=False)
    c_view = find_col(header, "ViewPosition", required=False)
    rows, no_label = [], 0
    for rec in table:
        lat = norm_laterality(rec.get(c_lat, "")) if c_lat else ""
        side = rec.get(c_side, "").strip().upper() if c_side else ""
        if not lat and side in ("L", "R"):
            lat = side
        if per_side and lat and side in ("L", "R") and side != lat:
            no_label += 1
            continue
        label = label_of(rec)
        if label is None or not rec.get(c_img):
            no_label += 1
            continue
        rows.append(
            LabelRow(
                key=rec[c_img].replace("\\", "/"),
                label=label,
                patient=rec[c_pat],
                laterality=lat,
                view=rec.get(c_view, "") if c_view else "",
                key_kind="path",
            )
        )
    return TaskLabels(task, classes, aggregate_max(rows), str(path), len(table), no_label)


def density(labels) -> TaskLabels:
    def label_of(rec):
        v = rec.get("tissueden", "").strip()
        v = v[:-2] if v.endswith(".0") else v
        return DENSITY.index(v) if v in DENSITY else None

    return _load(labels, "embed-density", DENSITY, label_of, per_side=False)


def assessment(labels) -> TaskLabels:
    def label_of(rec):
        v = rec.get("asses", "").strip().upper()
        return ASSESSMENT_LETTERS.index(v) if v in ASSESSMENT_LETTERS else None

    return _load(labels, "embed-assessment", ASSESSMENT, label_of, per_side=True)
