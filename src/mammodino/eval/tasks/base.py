"""What a task adapter returns, and the small helpers every adapter shares.

An adapter reads one public label table and returns :class:`TaskLabels`: the class names
and one :class:`LabelRow` per image (or per breast, or per DBT slice) with a key that says
how the row finds its image in the features:

* ``stem``: the manifest ``stem`` (the file stem: RSNA ``image_id``, VinDr ``image_id``);
* ``path``: a path as the table writes it (CBIS-DDSM ``image file path``; generic CSV);
  matched against the manifest ``source`` path;
* ``prefix``: the file stem starts with the key followed by ``_`` (INbreast ``File Name``);
* ``patient``: every image of that patient and laterality (CMMD names its files 1-1.dcm
  under a folder per patient, so only patient + side identify them).

The raw patient id stays in memory: it groups images for splits and bootstrap and is
never written anywhere.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from mammodino.errors import UserError

KEY_KINDS = ("stem", "path", "prefix", "patient")


@dataclass
class LabelRow:
    key: str
    label: int
    patient: str = ""
    laterality: str = ""
    view: str = ""
    split: str = ""
    key_kind: str = "stem"
    slice: int | None = None  # one DBT slice (slice-level tasks)
    slice_range: tuple[int, int] | None = None  # DBT: slices z0..z1 carry ``label``, the others 0


@dataclass
class TaskLabels:
    task: str
    classes: list[str]
    rows: list[LabelRow]
    source: str = ""
    n_table_rows: int = 0
    n_no_label: int = 0  # table rows that carry no label for this task (e.g. empty density)
    notes: list[str] = field(default_factory=list)
    slice_level: bool = False

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for r in self.rows:
            out[self.classes[r.label]] += 1
        return out


def read_table(path: str | Path) -> tuple[list[str], list[dict]]:
    """Header and rows of a CSV/TSV/semicolon table (the delimiter is sniffed: INbreast
    ships ``;``). Keys keep the table's spelling; use :func:`find_col` to look them up."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"label table {path}: no such file")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    delim = max([",", ";", "\t"], key=first.count)
    reader = csv.DictReader(text.splitlines(), delimiter=delim)
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    header = [h.strip() for h in (reader.fieldnames or [])]
    return header, rows


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def find_col(header: list[str], *candidates: str, required: bool = True, table: str = "") -> str | None:
    """The header entry matching one of ``candidates`` (case, space and underscore
    insensitive: CBIS-DDSM spells ``breast_density`` in one file, ``breast density`` in
    the other)."""
    normed = {_norm(h): h for h in header}
    for cand in candidates:
        if _norm(cand) in normed:
            return normed[_norm(cand)]
    if required:
        raise UserError(
            f"label table {table}: no column {' / '.join(repr(c) for c in candidates)} "
            f"(columns: {', '.join(header)})"
        )
    return None


def aggregate_max(rows: list[LabelRow]) -> list[LabelRow]:
    """One row per (key kind, key, laterality, slice): the highest label wins.

    Tables with one line per finding (VinDr findings, CBIS-DDSM abnormalities, mini-MIAS)
    describe an image several times; for presence tasks "any finding" is the max, and for
    ordinal tasks (BI-RADS, pathology) the worst finding is the max."""
    out: dict[tuple, LabelRow] = {}
    for r in rows:
        k = (r.key_kind, r.key, r.laterality if r.key_kind == "patient" else "", r.slice, r.slice_range)
        if k in out:
            if r.label > out[k].label:
                out[k].label = r.label
        else:
            out[k] = LabelRow(**r.__dict__)
    return list(out.values())


def norm_laterality(value: str) -> str:
    v = str(value or "").strip().upper()
    if v in ("L", "LEFT"):
        return "L"
    if v in ("R", "RIGHT"):
        return "R"
    return ""


def paths_of(labels) -> list[Path]:
    if labels is None:
        return []
    if isinstance(labels, (str, Path)):
        labels = [labels]
    out = []
    for item in labels:
        for part in str(item).split(","):
            if part.strip():
                out.append(Path(part.strip()))
    return out


def single_table(labels, task: str) -> Path:
    paths = paths_of(labels)
    if len(paths) != 1:
        raise UserError(f"task {task}: needs exactly one label table (--labels), got {len(paths)}")
    return paths[0]
