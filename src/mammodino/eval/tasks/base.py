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
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from mammodino.errors import UserError

KEY_KINDS = ("stem", "path", "prefix", "patient")


@dataclass(slots=True)
class LabelRow:
    """One labelled row. Slotted, and its repeated short texts (patient, side, view, split)
    interned: a task holds one per labelled table row (4 M rows of a 200 MB table)."""

    key: str
    label: int
    patient: str = ""
    laterality: str = ""
    view: str = ""
    split: str = ""
    key_kind: str = "stem"
    slice: int | None = None  # one DBT slice (slice-level tasks)
    slice_range: tuple[int, int] | None = None  # DBT: slices z0..z1 carry ``label``, the others 0

    def __post_init__(self):
        intern = sys.intern
        self.patient, self.laterality = intern(str(self.patient)), intern(str(self.laterality))
        self.view, self.split, self.key_kind = intern(str(self.view)), intern(str(self.split)), intern(str(self.key_kind))


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


class TableRow(dict):
    """One table row (column -> stripped text) that knows its line in the file."""

    line: int = 0


class TableRows:
    """The rows of a label table, streamed from the file each time they are iterated: memory
    does not grow with the file (a 200 MB table read whole took 3.9 GB). Every malformed row
    is a UserError naming the file, the line and what is wrong."""

    def __init__(self, path: Path, header: list[str], encoding: str, delimiter: str):
        self.path, self.header, self.encoding, self.delimiter = path, header, encoding, delimiter
        self._len: int | None = None

    def __iter__(self):
        with _open_table(self.path, self.encoding) as fh:
            reader = csv.reader(fh, delimiter=self.delimiter, strict=True)
            n = len(self.header)
            start = 1
            count = 0
            try:
                next(reader, None)
                last_line = reader.line_num
                for values in reader:
                    start = last_line + 1
                    last_line = reader.line_num
                    if not values or all(not v.strip() for v in values):
                        continue
                    if reader.line_num - start >= 2:
                        raise UserError(f"label table {self.path} line {start}: a quoted field runs over "
                                        f"{reader.line_num - start + 1} lines (to line {reader.line_num}); "
                                        "an unbalanced quote? fix the table")
                    if len(values) > n and any(v.strip() for v in values[n:]):
                        raise UserError(f"label table {self.path} line {start}: {len(values)} fields, the header has {n} "
                                        f"(extra value {_show(values[n])})")
                    row = TableRow((h, (values[i].strip() if i < len(values) else "")) for i, h in enumerate(self.header))
                    row.line = start
                    count += 1
                    yield row
                self._len = count  # read to the end: len() needs no second pass
            except csv.Error as exc:
                start = last_line + 1 if "last_line" in locals() else 1
                hint = "; a quote opened there is never closed?" if "end of data" in str(exc) else ""
                raise UserError(f"label table {self.path} line {start}: not readable as CSV ({exc}){hint}") from None

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self)
        return self._len


def _show(value: str, limit: int = 60) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _open_table(path: Path, encoding: str):
    return path.open(newline="", encoding=encoding, errors="replace")


def _encoding_of(path: Path, head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if b"\x00" in head:
        raise UserError(f"label table {path}: holds NUL bytes (UTF-16 without a byte-order mark, or not a text "
                        "table); save it as UTF-8 CSV")
    return "utf-8"


def read_table(path: str | Path) -> tuple[list[str], TableRows]:
    """Header and (streamed) rows of a CSV/TSV/semicolon table (the delimiter is sniffed
    from the header line: INbreast ships ``;``). Keys keep the table's spelling; use
    :func:`find_col` to look them up. UTF-8 (with or without BOM) and UTF-16 with BOM."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"label table {path}: no such file")
    if not path.is_file():
        raise UserError(f"label table {path}: not a regular file (a folder, FIFO or device?)")
    with path.open("rb") as fh:
        head = fh.read(4096)
    encoding = _encoding_of(path, head)
    with _open_table(path, encoding) as fh:
        first = fh.readline(1 << 20)
    if not first.strip():
        raise UserError(f"label table {path}: empty (no header line)")
    delim = max([",", ";", "\t"], key=first.count)
    try:
        header = [h.strip() for h in next(csv.reader([first.rstrip("\r\n")], delimiter=delim))]
    except csv.Error as exc:
        raise UserError(f"label table {path} line 1: not readable as CSV ({exc})") from None
    return header, TableRows(path, header, encoding, delim)


MISSING_VALUES = {"", "nan", "na", "n/a", "none", "null"}  # how exports write an empty cell


def is_missing(value: str) -> bool:
    return str(value).strip().lower() in MISSING_VALUES


def label_error(table, row, column: str, value: str, expected: str) -> UserError:
    """A UserError for a label value a task cannot read, naming file, line and value."""
    line = getattr(row, "line", 0)
    where = f"label table {table}" + (f" line {line}" if line else "")
    return UserError(f"{where}: column {column!r} has the value {_show(value)}; expected {expected}")


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
            f"(columns: {_printable(', '.join(header))})"
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
            out[k] = replace(r)
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


def _printable(text: str, limit: int = 300) -> str:
    """``text`` with control and non-printable characters shown as '?' (a binary file given
    as a table must not write its bytes to the terminal), cut to ``limit``."""
    out = "".join(ch if ch.isprintable() and ch != "\ufffd" else "?" for ch in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."
