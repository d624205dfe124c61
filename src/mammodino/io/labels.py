"""Laterality/view from a label table (``mammodino index --labels TABLE.csv``).

Public tables name their columns differently (RSNA ``image_id, laterality, view``; VinDr
``image_id, laterality, view_position``; others ``filename``, ``ImageLaterality``,
``ViewPosition``, ``side`` ...). Columns are matched case- and punctuation-insensitively
against the lists below; the image-id value is reduced to a file stem (directory and
extension dropped) so that ``images/123.dcm``, ``123.png`` and ``123`` all match a file
``123.dcm``. The first row of an image id wins (finding-level tables repeat ids).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from mammodino.errors import UserError
from mammodino.io.image_reader import IMAGE_EXTENSIONS
from mammodino.io.tags import normalise_laterality, normalise_view

# what a table's file column may end in: DICOM spellings and whatever the image reader reads
STEM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima", *IMAGE_EXTENSIONS}

ID_COLUMNS = ["image_id", "imageid", "image", "image_name", "imagename", "file_name", "filename", "file",
              "stem", "path", "image_path", "imagepath", "filepath", "file_path", "sop_instance_uid",
              "sopinstanceuid", "dicom", "dicom_path", "id"]
LATERALITY_COLUMNS = ["laterality", "image_laterality", "imagelaterality", "side", "breast_side",
                      "left_or_right_breast", "leftright", "lat", "breast"]
VIEW_COLUMNS = ["view", "view_position", "viewposition", "image_view", "imageview", "projection", "view_name"]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _pick(fieldnames: list[str], candidates: list[str]) -> str | None:
    by_norm = {_norm(f): f for f in fieldnames}
    for cand in candidates:
        if _norm(cand) in by_norm:
            return by_norm[_norm(cand)]
    return None


def stem_of(value: str) -> str:
    """'a/b/123.dcm' -> '123'; '123' -> '123'; '1.2.840.1' (a UID) stays whole."""
    text = str(value).strip()
    if not text:
        return ""
    name = PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in STEM_SUFFIXES:
        return name[: -len(suffix)]
    return name


def load_label_table(path) -> dict[str, tuple[str, str]]:
    """``{stem: (laterality, view)}`` from a CSV; laterality "L"/"R"/"", view e.g. "CC"/"".

    Raises UserError (naming the file and the columns it has) when no image-id column or
    neither a laterality nor a view column is found."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels {path}: file not found")
    from mammodino.eval.tasks import mias  # the one MIAS reader (imported here: eval is above io)

    if mias.is_info_file(path):
        # every MIAS film is an MLO view and its number says the side (even left, odd right),
        # which a PGM file cannot carry: with it the muscle leaves an MLO's tissue mask and QC
        # compares the breast's side with the table's
        return {f.refnum: (f.laterality, "MLO") for f in mias.parse_info(path)}
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        sample = fh.read(64 * 1024)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(fh, dialect=dialect)
        fields = reader.fieldnames or []
        id_col = _pick(fields, ID_COLUMNS)
        lat_col = _pick(fields, LATERALITY_COLUMNS)
        view_col = _pick(fields, VIEW_COLUMNS)
        if id_col is None or (lat_col is None and view_col is None):
            raise UserError(
                f"--labels {path}: need an image-id column (one of {', '.join(ID_COLUMNS[:8])}, ...) and a "
                f"laterality or view column; the table has columns {', '.join(fields) or '(none)'}")
        table: dict[str, tuple[str, str]] = {}
        for row in reader:
            key = stem_of(row.get(id_col) or "")
            if not key or key in table:
                continue
            lat = normalise_laterality(row.get(lat_col)) if lat_col else ""
            view = normalise_view(row.get(view_col)) if view_col else ""
            table[key] = (lat, view)
    return table
