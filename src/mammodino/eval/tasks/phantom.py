"""Our synthetic phantoms (``mammodino synth``): ``labels.csv`` beside the DICOMs.

Columns: ``image_id`` (= file stem), ``path``, ``patient_id``, ``laterality``, ``view``,
``kind`` (ffdm/dbt), ``density`` (A-D), ``lesion`` (0/1), ``lesion_type``,
``lesion_box`` and ``lesion_slices`` ("z0 z1", DBT only).

* ``phantom-lesion``: lesion present in the image (DBT: the image-level feature is the
  middle slice, which may miss a lesion that lies in other slices; use the slice task);
* ``phantom-density``: density A-D;
* ``phantom-dbt-slice-lesion``: one row per DBT slice (needs ``mammodino embed
  --dbt-slices all``): positive when the volume has a lesion and the slice is within
  ``lesion_slices`` (inclusive).
"""

from __future__ import annotations

from mammodino.eval.tasks.base import LabelRow, TaskLabels, find_col, is_missing, label_error, read_table, single_table

DENSITY = ["A", "B", "C", "D"]


def _rows(labels, task):
    path = single_table(labels, task)
    header, table = read_table(path)
    cols = {
        name: find_col(header, name, table=str(path))
        for name in ("image_id", "patient_id", "laterality", "view", "kind", "density", "lesion")
    }
    cols["lesion_slices"] = find_col(header, "lesion_slices", required=False)
    return path, table, cols


def _row(rec, cols, label, **extra) -> LabelRow:
    return LabelRow(
        key=rec[cols["image_id"]],
        label=label,
        patient=rec[cols["patient_id"]],
        laterality=rec[cols["laterality"]],
        view=rec[cols["view"]],
        **extra,
    )


def _binary(path, row, column) -> int:
    value = row[column].strip()
    if value in ("0", "1", "0.0", "1.0"):
        return int(float(value))
    raise label_error(path, row, column, value, "0 or 1 (or empty)")


def lesion(labels) -> TaskLabels:
    path, table, cols = _rows(labels, "phantom-lesion")
    rows = [_row(r, cols, _binary(path, r, cols["lesion"])) for r in table if not is_missing(r[cols["lesion"]])]
    return TaskLabels("phantom-lesion", ["no lesion", "lesion"], rows, str(path), len(table), len(table) - len(rows))


def density(labels) -> TaskLabels:
    path, table, cols = _rows(labels, "phantom-density")
    rows = []
    for r in table:
        value = r[cols["density"]]
        if value in DENSITY:
            rows.append(_row(r, cols, DENSITY.index(value)))
        elif not is_missing(value):
            raise label_error(path, r, cols["density"], value, "A, B, C or D (or empty)")
    return TaskLabels("phantom-density", DENSITY, rows, str(path), len(table), len(table) - len(rows))


def dbt_slice_lesion(labels) -> TaskLabels:
    """One row per DBT volume carrying its positive slice range; the join expands it over
    the volume's embedded slices."""
    path, table, cols = _rows(labels, "phantom-dbt-slice-lesion")
    rows, no_label = [], 0
    for r in table:
        if r[cols["kind"]].lower() != "dbt":
            continue
        has = 0 if is_missing(r[cols["lesion"]]) else _binary(path, r, cols["lesion"])
        rng = None
        if has:
            parts = (r.get(cols["lesion_slices"], "") if cols["lesion_slices"] else "").split()
            if len(parts) != 2:
                no_label += 1
                continue
            if not all(p.isdigit() for p in parts):
                raise label_error(path, r, cols["lesion_slices"], " ".join(parts), "two slice numbers 'z0 z1'")
            rng = (int(parts[0]), int(parts[1]))
        rows.append(_row(r, cols, has, slice_range=rng))
    return TaskLabels(
        "phantom-dbt-slice-lesion",
        ["no lesion in slice", "lesion in slice"],
        rows,
        str(path),
        len(table),
        no_label,
        slice_level=True,
    )
