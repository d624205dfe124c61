"""mini-MIAS (``Info.txt``): one whitespace-separated line per finding.

``REFNUM TISSUE CLASS [SEVERITY X Y RADIUS]``, e.g. ``mdb001 G CIRC B 535 425 197``,
``mdb003 D NORM``; an image with two findings has two lines (``mdb005``). Tissue is
F (fatty), G (fatty-glandular), D (dense-glandular); class is CALC CIRC SPIC MISC ARCH ASYM
NORM; severity B/M; coordinates have their origin at the bottom-left. The images are
``mdbNNN.pgm`` (key = stem). Odd numbers are right breasts, even numbers left, and each
consecutive pair (mdb001/mdb002) is one woman: patient = (N + 1) // 2. All views are MLO.
Lines that are not findings (headers, blank) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mammodino.errors import UserError
from mammodino.eval.tasks.base import LabelRow, TaskLabels, aggregate_max, single_table

TISSUE = ["F", "G", "D"]
CLASSES = ["CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM"]
_REF = re.compile(r"^mdb(\d{3})$", re.IGNORECASE)


@dataclass
class MiasFinding:
    refnum: str
    tissue: str
    abnormality: str
    severity: str = ""  # B | M | ""
    x: float | None = None
    y: float | None = None  # origin bottom-left, as published
    radius: float | None = None

    @property
    def number(self) -> int:
        return int(self.refnum[3:])

    @property
    def laterality(self) -> str:
        return "L" if self.number % 2 == 0 else "R"

    @property
    def patient(self) -> str:
        return f"mias-{(self.number + 1) // 2:03d}"


_FINDING_LINE = re.compile(r"^mdb\d{3}\s+[FGD]\s+[A-Z]+", re.IGNORECASE | re.MULTILINE)


def is_info_file(path: str | Path) -> bool:
    """A mini-MIAS ``Info.txt``: finding lines (``mdb001 G CIRC ...``) within its first
    64 KiB, whitespace-separated, with no header row a table reader could match."""
    with Path(path).open("rb") as fh:
        head = fh.read(64 * 1024).decode("utf-8", "replace")
    return bool(_FINDING_LINE.search(head))


def _lines(path: Path):
    """The file streamed line by line (memory independent of its size)."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        yield from fh


def parse_info(path: str | Path) -> list[MiasFinding]:
    """All finding lines of ``Info.txt``."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"mini-MIAS table {path}: no such file")
    if not path.is_file():
        raise UserError(f"mini-MIAS table {path}: not a regular file")
    out = []
    for line in _lines(path):
        parts = line.split()
        if len(parts) < 3 or not _REF.match(parts[0]):
            continue
        tissue, cls = parts[1].upper(), parts[2].upper()
        if tissue not in TISSUE or cls not in CLASSES:
            continue
        f = MiasFinding(parts[0].lower(), tissue, cls)
        if len(parts) > 3 and parts[3].upper() in ("B", "M"):
            f.severity = parts[3].upper()
        nums = []
        for tok in parts[4:7]:
            try:
                nums.append(float(tok))
            except ValueError:
                break  # '*NOTE 3*' and the like
        if len(nums) >= 2:
            f.x, f.y = nums[0], nums[1]
        if len(nums) == 3:
            f.radius = nums[2]
        out.append(f)
    if not out:
        raise UserError(f"{path}: no mini-MIAS lines (expected e.g. 'mdb001 G CIRC B 535 425 197')")
    return out


def _task(labels, task, classes, label_of) -> TaskLabels:
    path = single_table(labels, task)
    findings = parse_info(path)
    rows, no_label = [], 0
    for f in findings:
        label = label_of(f)
        if label is None:
            no_label += 1
            continue
        rows.append(LabelRow(key=f.refnum, label=label, patient=f.patient, laterality=f.laterality, view="MLO"))
    return TaskLabels(task, classes, aggregate_max(rows), str(path), len(findings), no_label)


def density(labels) -> TaskLabels:
    return _task(labels, "mias-density", ["F", "G", "D"], lambda f: TISSUE.index(f.tissue))


def abnormal(labels) -> TaskLabels:
    return _task(labels, "mias-abnormal", ["normal", "abnormal"], lambda f: int(f.abnormality != "NORM"))


def malignant(labels) -> TaskLabels:
    def label_of(f):
        if f.abnormality == "NORM" or not f.severity:
            return None
        return int(f.severity == "M")

    return _task(labels, "mias-malignant", ["benign", "malignant"], label_of)
