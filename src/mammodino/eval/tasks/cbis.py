"""CBIS-DDSM case description tables (``mass_case_description_{train,test}_set.csv``,
``calc_case_description_{train,test}_set.csv``; pass several with ``--labels a,b,c``).

One row per abnormality: ``patient_id`` (P_00001), ``breast_density`` (mass tables) or
``breast density`` (calc tables) 1-4, ``left or right breast``, ``image view``,
``abnormality type`` (mass/calcification), ``pathology`` (MALIGNANT, BENIGN,
BENIGN_WITHOUT_CALLBACK) and ``image file path``
(``Mass-Training_P_00001_LEFT_CC/<uid>/<uid>/000000.dcm``). The image key is that path;
its first folder names the full mammogram (patient, side, view) and is what survives the
TCIA download layout, so matching falls back to it. The published Training/Test split is
read from that folder name (``Mass-Training_...`` / ``Calc-Test_...``) and honoured.
An image with several abnormalities is malignant when any of them is.
"""

from __future__ import annotations

from mammodino.eval.tasks.base import (
    LabelRow,
    TaskLabels,
    aggregate_max,
    find_col,
    norm_laterality,
    paths_of,
    read_table,
)
from mammodino.errors import UserError

DENSITY = ["1", "2", "3", "4"]


def _split_of(path: str) -> str:
    first = path.replace("\\", "/").split("/")[0].lower()
    if "training" in first:
        return "train"
    if "test" in first:
        return "test"
    return ""


def _load(labels, task, classes, label_of) -> TaskLabels:
    paths = paths_of(labels)
    if not paths:
        raise UserError(f"task {task}: needs the CBIS-DDSM case description table(s) (--labels)")
    rows, no_label, n_table = [], 0, 0
    for path in paths:
        header, table = read_table(path)
        n_table += len(table)
        c_pat = find_col(header, "patient_id", table=str(path))
        c_img = find_col(header, "image file path", table=str(path))
        c_lat = find_col(header, "left or right breast", required=False)
        c_view = find_col(header, "image view", required=False)
        c_den = find_col(header, "breast_density", "breast density", required=False)
        c_type = find_col(header, "abnormality type", required=False)
        c_path = find_col(header, "pathology", required=False)
        cols = {"density": c_den, "type": c_type, "pathology": c_path}
        for rec in table:
            label = label_of(rec, cols)
            if label is None:
                no_label += 1
                continue
            img = rec[c_img].replace("\\", "/").strip()
            rows.append(
                LabelRow(
                    key=img,
                    label=label,
                    patient=rec[c_pat],
                    laterality=norm_laterality(rec.get(c_lat, "")) if c_lat else "",
                    view=rec.get(c_view, "") if c_view else "",
                    split=_split_of(img),
                    key_kind="path",
                )
            )
    return TaskLabels(task, classes, aggregate_max(rows), ",".join(map(str, paths)), n_table, no_label)


def pathology(labels) -> TaskLabels:
    def label_of(rec, cols):
        if not cols["pathology"]:
            raise UserError("cbis-pathology: the table has no 'pathology' column")
        v = rec[cols["pathology"]].strip().upper()
        if v == "MALIGNANT":
            return 1
        if v.startswith("BENIGN"):
            return 0
        return None

    return _load(labels, "cbis-pathology", ["benign", "malignant"], label_of)


def abnormality_type(labels) -> TaskLabels:
    def label_of(rec, cols):
        if not cols["type"]:
            raise UserError("cbis-type: the table has no 'abnormality type' column")
        v = rec[cols["type"]].strip().lower()
        if v == "mass":
            return 0
        if v.startswith("calc"):
            return 1
        return None

    return _load(labels, "cbis-type", ["mass", "calcification"], label_of)


def density(labels) -> TaskLabels:
    def label_of(rec, cols):
        if not cols["density"]:
            raise UserError("cbis-density: the table has no 'breast_density' / 'breast density' column")
        v = rec[cols["density"]].strip()
        return DENSITY.index(v) if v in DENSITY else None  # a few calc rows say 0: no label

    return _load(labels, "cbis-density", DENSITY, label_of)
