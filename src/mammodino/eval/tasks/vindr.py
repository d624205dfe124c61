"""VinDr-Mammo: ``breast-level_annotations.csv`` and ``finding_annotations.csv``.

Both tables have one row per image (``image_id`` = the DICOM file stem) with
``study_id``, ``laterality``, ``view_position``, ``breast_birads`` ("BI-RADS 1".."BI-RADS 5"),
``breast_density`` ("DENSITY A".."DENSITY D") and the published ``split``
(training/test, honoured). The finding table repeats an image once per finding, with
``finding_categories`` a Python-list literal such as ``['Mass']`` or
``['Suspicious Calcification', 'Mass']``; ``['No Finding']`` marks a normal image.
VinDr publishes no patient id; each study is one patient's exam, so ``study_id`` groups.
"""

from __future__ import annotations

import ast

from mammodino.errors import UserError
from mammodino.eval.tasks.base import LabelRow, TaskLabels, aggregate_max, find_col, read_table, single_table

BIRADS = ["BI-RADS 1", "BI-RADS 2", "BI-RADS 3", "BI-RADS 4", "BI-RADS 5"]
DENSITY = ["A", "B", "C", "D"]


def _birads(value: str) -> int | None:
    digits = "".join(ch for ch in value if ch.isdigit())
    if digits and 1 <= int(digits) <= 5:
        return int(digits)
    return None


def _density(value: str) -> int | None:
    v = value.strip().upper().replace("DENSITY", "").strip()
    return DENSITY.index(v) if v in DENSITY else None


def parse_categories(value: str) -> list[str]:
    """``"['Mass', 'Suspicious Calcification']"`` -> ``['Mass', 'Suspicious Calcification']``
    (``ast.literal_eval`` on a list literal: no code is executed)."""
    value = (value or "").strip()
    if not value:
        return []
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = [p.strip(" '\"") for p in value.strip("[]").split(",")]
    if isinstance(parsed, str):
        parsed = [parsed]
    return [str(p).strip() for p in parsed if str(p).strip()]


def _load(labels, task: str, classes: list[str], label_of, need_findings: bool = False) -> TaskLabels:
    path = single_table(labels, task)
    header, table = read_table(path)
    c_img = find_col(header, "image_id", table=str(path))
    c_study = find_col(header, "study_id", table=str(path))
    c_lat = find_col(header, "laterality", required=False)
    c_view = find_col(header, "view_position", "view", required=False)
    c_split = find_col(header, "split", required=False)
    c_find = find_col(header, "finding_categories", required=need_findings, table=str(path))
    if need_findings and c_find is None:  # pragma: no cover (find_col raised)
        raise UserError(f"{path}: task {task} needs finding_annotations.csv")
    rows, no_label = [], 0
    for rec in table:
        label = label_of(rec, c_find)
        if label is None:
            no_label += 1
            continue
        rows.append(
            LabelRow(
                key=rec[c_img],
                label=label,
                patient=rec[c_study],
                laterality=rec.get(c_lat, "") if c_lat else "",
                view=rec.get(c_view, "") if c_view else "",
                split=rec.get(c_split, "") if c_split else "",
            )
        )
    return TaskLabels(task, classes, aggregate_max(rows), str(path), len(table), no_label)


def birads(labels) -> TaskLabels:
    def label_of(rec, _):
        b = _birads(rec.get("breast_birads", ""))
        return None if b is None else b - 1

    return _load(labels, "vindr-birads", BIRADS, label_of)


def density(labels) -> TaskLabels:
    return _load(labels, "vindr-density", DENSITY, lambda rec, _: _density(rec.get("breast_density", "")))


def suspicious(labels) -> TaskLabels:
    def label_of(rec, _):
        b = _birads(rec.get("breast_birads", ""))
        return None if b is None else int(b >= 4)

    return _load(labels, "vindr-suspicious", ["BI-RADS 1-3", "BI-RADS 4-5"], label_of)


def _finding_task(task: str, classes, test) -> TaskLabels:
    def label_of(rec, c_find):
        cats = parse_categories(rec.get(c_find, ""))
        if not cats:
            return None
        return int(test(cats))

    return lambda labels: _load(labels, task, classes, label_of, need_findings=True)


finding = _finding_task("vindr-finding", ["no finding", "finding"], lambda c: any(x != "No Finding" for x in c))
mass = _finding_task("vindr-mass", ["no mass", "mass"], lambda c: "Mass" in c)
calcification = _finding_task(
    "vindr-calcification", ["no calcification", "calcification"], lambda c: any("Calcification" in x for x in c)
)
