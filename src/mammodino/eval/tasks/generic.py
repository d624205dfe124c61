"""Any CSV: name the image, label and patient columns.

``--path-col`` holds a path or a file stem (matched against the manifest ``source`` path,
then the stem); ``--label-col`` any values (integers sort numerically, otherwise
alphabetically; two values make a binary task with the second as positive, e.g. 0/1 or
benign/malignant); ``--patient-col`` groups images (optional: the manifest's pseudonymous
patient key is used without it). Optional ``--laterality-col``, ``--view-col``,
``--split-col`` (train/test values are honoured).
"""

from __future__ import annotations

from mammodino.errors import UserError
from mammodino.eval.tasks.base import LabelRow, TaskLabels, aggregate_max, find_col, norm_laterality, read_table, single_table


def _sort_key(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def generic(
    labels,
    path_col: str | None = None,
    label_col: str | None = None,
    patient_col: str | None = None,
    laterality_col: str | None = None,
    view_col: str | None = None,
    split_col: str | None = None,
    task: str = "generic",
) -> TaskLabels:
    if not path_col or not label_col:
        raise UserError("task generic: give --path-col and --label-col (and --patient-col when the table has one)")
    path = single_table(labels, task)
    header, table = read_table(path)
    c_img = find_col(header, path_col, table=str(path))
    c_lab = find_col(header, label_col, table=str(path))
    c_pat = find_col(header, patient_col, table=str(path)) if patient_col else None
    c_lat = find_col(header, laterality_col, table=str(path)) if laterality_col else None
    c_view = find_col(header, view_col, table=str(path)) if view_col else None
    c_split = find_col(header, split_col, table=str(path)) if split_col else None
    values = sorted({r[c_lab] for r in table if r[c_lab] != ""}, key=_sort_key)
    if len(values) < 2:
        raise UserError(f"{path}: column {c_lab!r} has {len(values)} distinct value(s); a task needs two or more")
    rows, no_label = [], 0
    for rec in table:
        if rec[c_lab] == "" or not rec[c_img]:
            no_label += 1
            continue
        rows.append(
            LabelRow(
                key=rec[c_img].replace("\\", "/"),
                label=values.index(rec[c_lab]),
                patient=rec[c_pat] if c_pat else "",
                laterality=norm_laterality(rec[c_lat]) if c_lat else "",
                view=rec[c_view] if c_view else "",
                split=rec[c_split] if c_split else "",
                key_kind="path",
            )
        )
    return TaskLabels(task, values, aggregate_max(rows), str(path), len(table), no_label)
