"""Hostile inputs of round two beyond caches and weights: label tables (malformed, and large
enough to show whether memory follows the file), DICOMs whose header declares huge
Rows/Columns/NumberOfFrames, source trees whose names are not valid UTF-8, and folders of
non-DICOM files given to ``attention``. Builders and CLI runs used by
``benchmarks/faults.py`` (scenario ``inputs``); the unit tests of each live in
tests/eval/test_label_tables.py, tests/io/test_dicom_reader.py, tests/data/test_index_names.py
and tests/eval/test_attention.py.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from support import procs

RSNA_HEAD = ("site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,density,"
             "machine_id,difficult_negative_case\n")
PLANTED = ["MRN4242", "ZQDOE", "ZQJANE", "ACC7788"]  # planted in file and folder names: never in a cache or output


# --------------------------------------------------------------------------- label tables


def _rsna_lines(start: int, n: int):
    dens = ("", "A", "B", "C", "D")
    for i in range(start, start + n):
        pid = 10000 + i // 4
        yield (f"{1 + i % 2},{pid},{1_000_000_007 * (i + 1) % 9_999_999_967},{'LR'[(i // 2) % 2]},"
               f"{('CC', 'MLO')[i % 2]},{40 + i % 50},{int(i % 47 == 0)},0,0,{i % 3},0,{dens[i % 5]},{21 + i % 70},False\n")


def write_rsna_table(path: Path, target_bytes: int, bad_at_line: int | None = None, bad_value: str = "yes") -> int:
    """An RSNA-like train.csv of about ``target_bytes``; with ``bad_at_line`` the ``cancer``
    value of that line is ``bad_value``. Returns the number of data rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    size = len(RSNA_HEAD)
    with path.open("w", newline="") as fh:
        fh.write(RSNA_HEAD)
        while size < target_bytes:
            block = list(_rsna_lines(n, 20_000))
            if bad_at_line is not None and n + 2 <= bad_at_line < n + 2 + len(block):
                cols = block[bad_at_line - n - 2].split(",")
                cols[6] = bad_value
                block[bad_at_line - n - 2] = ",".join(cols)
            text = "".join(block)
            fh.write(text)
            size += len(text)
            n += len(block)
    return n


def _text(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def hostile_tables(root: Path) -> dict[str, Path]:
    """Malformed RSNA label tables, each a clear error for ``load_task("rsna-cancer", ...)``."""
    root.mkdir(parents=True, exist_ok=True)
    ok = "".join(_rsna_lines(0, 8))
    cases = {}

    def bad(name, value):
        lines = ok.splitlines(keepends=True)
        cols = lines[3].split(",")
        cols[6] = value
        lines[3] = ",".join(cols)
        cases[name] = _text(root / f"{name.replace(' ', '_')}.csv", RSNA_HEAD + "".join(lines))

    for v in ("yes", "no", "2", "-1", "1e400", "0x1", "\x00", "\u202e1"):
        bad(f"label {v!r}", v)
    lines = ok.splitlines(keepends=True)
    cases["extra fields"] = _text(root / "extra.csv", RSNA_HEAD + lines[0] + lines[1].rstrip("\n") + ",x,y\n")
    cases["unbalanced quote"] = _text(root / "quote.csv", RSNA_HEAD + lines[0] + '2,1,"3,L,CC\n' + ok * 30)
    cases["missing cancer column"] = _text(root / "nocol.csv", RSNA_HEAD.replace("cancer", "canser") + ok)
    cases["empty file"] = _text(root / "empty.csv", "")
    cases["NUL bytes (UTF-16 without BOM)"] = root / "u16nobom.csv"
    cases["NUL bytes (UTF-16 without BOM)"].write_bytes((RSNA_HEAD + ok).encode("utf-16-le"))
    cases["binary junk"] = root / "junk.csv"
    cases["binary junk"].write_bytes(bytes(range(256)) * 64)
    cases["1 MB field"] = _text(root / "field.csv", RSNA_HEAD + lines[0] + '2,1,"' + "x" * 1_000_000 + '",L,CC,1,0\n')
    cases["no newline, 5 MB header"] = _text(root / "longhead.csv", "a," * 2_500_000)
    (root / "folder.csv").mkdir(exist_ok=True)
    cases["a folder"] = root / "folder.csv"
    if not (root / "fifo.csv").exists():
        os.mkfifo(root / "fifo.csv")
    cases["a FIFO"] = root / "fifo.csv"
    cases["no such file"] = root / "missing.csv"
    return cases


TABLE_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from mammodino.errors import UserError
from mammodino.eval.tasks import load_task, read_table
mode, path = sys.argv[1], sys.argv[2]
try:
    if mode == "stream":
        header, rows = read_table(path)
        n = sum(1 for _ in rows)
        print(f"streamed {n} rows")
    else:
        task = load_task("rsna-cancer", path)
        print(f"loaded {len(task.rows)} labelled rows of {task.n_table_rows}")
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    print(f"seconds {time.perf_counter() - t0:.1f}")
    sys.exit(2)
print(f"seconds {time.perf_counter() - t0:.1f}")
"""


def run_table(mode: str, path: Path, timeout: float = 900) -> procs.ProcResult:
    return procs.run([sys.executable, "-c", TABLE_SCRIPT, mode, str(path)], env=procs.quiet_env(), timeout=timeout,
                     peak_rss=True)


# --------------------------------------------------------------------------- DICOM headers


def huge_dicoms(root: Path) -> dict[str, Path]:
    """DICOMs whose header declares sizes far beyond their data (and beyond any memory)."""
    import pydicom

    from support.dicom_files import write_dbt_series, write_mammo_dicom

    root.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 4095, 64 * 48).round().astype(np.uint16).reshape(64, 48)
    variants = {
        "Rows x Columns 65535 x 65535": {"Rows": 65535, "Columns": 65535},
        "NumberOfFrames 2^31-1": {"NumberOfFrames": "2147483647"},
        "65535 x 65535 x 1e6 frames": {"Rows": 65535, "Columns": 65535, "NumberOfFrames": "1000000"},
        "14000 x 14000 (under the limit), data short": {"Rows": 14000, "Columns": 14000},
        "14000 x 14000 x 2 frames": {"Rows": 14000, "Columns": 14000, "NumberOfFrames": "2"},
        "Rows 1, Columns 2^31": {"Rows": 1, "Columns": 65535, "NumberOfFrames": "2147483647"},
    }
    out = {}
    for i, (name, tags) in enumerate(variants.items()):
        path = write_mammo_dicom(root / f"h{i}" / f"huge{i}.dcm", ramp)
        ds = pydicom.dcmread(path)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(path, enforce_file_format=True)
        out[name] = path
    paths = write_dbt_series(root / "series", np.stack([ramp] * 4))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.Rows, ds.Columns = 9000, 9000
        ds.save_as(p, enforce_file_format=True)
    out["per-slice DBT series, 9000 x 9000 slices"] = root / "series"
    return out


# --------------------------------------------------------------------------- names


BAD_NAME_SOURCES = 7  # what bad_name_tree makes: 3 DICOMs, a non-DICOM, a PNG, a FIFO, a broken link


def bad_name_tree(root: Path, good_dicom: Path) -> Path:
    """Files and folders named with bytes that are not UTF-8, holding PLANTED strings."""
    src = os.fsencode(root)
    os.makedirs(src + b"/MRN4242\xe9\xff/ACC7788\xfe", exist_ok=True)
    data = good_dicom.read_bytes()
    for rel in (b"MRN4242\xe9\xff/ACC7788\xfe/MRN4242_ZQDOE\xffZQJANE_0.dcm", b"\xc3\x28ZQDOE.dcm", b"plain.dcm"):
        with open(src + b"/" + rel, "wb") as fh:
            fh.write(data)
    with open(src + b"/MRN4242\xe9\xff/\xfeZQJANE.dcm", "wb") as fh:
        fh.write(b"not a DICOM, named after a patient " * 4)
    with open(src + b"/MRN4242\xe9\xff/\xfbZQDOE.png", "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    for name, make in ((b"\xfaZQJANE.dcm", os.mkfifo), (b"\xfdZQDOE.dcm", None)):
        target = src + b"/" + name
        if os.path.lexists(target):
            continue
        if make is None:
            os.symlink(b"/nonexistent/MRN4242\xff", target)
        else:
            make(target)
    return Path(os.fsdecode(src))


# --------------------------------------------------------------------------- attention folders


def png_header(path: Path, h: int, w: int, bit_depth: int = 16) -> Path:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def attention_folders(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (folder or file, expected: 'ok' or 'clear')."""
    import cv2

    out = {}
    pngs = root / "pngs"
    pngs.mkdir(parents=True, exist_ok=True)
    img = np.zeros((160, 120), np.uint16)
    img[10:150, :80] = 40000
    cv2.imwrite(str(pngs / "MRN4242_ZQDOE_ZQJANE.png"), img)
    cv2.imwrite(str(pngs / "ACC7788.jpg"), (img >> 8).astype(np.uint8))
    cv2.imwrite(str(pngs / "rgb.png"), np.dstack([(img >> 8).astype(np.uint8)] * 3))
    (pngs / "notes.txt").write_text("ZQJANE ZQDOE")
    out["folder of PNG/JPEG (+ a text file)"] = (pngs, "ok")
    mixed = root / "mixed"
    mixed.mkdir(exist_ok=True)
    cv2.imwrite(str(mixed / "ok.png"), img)
    png_header(mixed / "huge.png", 60000, 60000)
    (mixed / "junk.png").write_bytes(b"no png")
    out["folder: 1 good, a 60000^2 PNG header, junk"] = (mixed, "ok")
    junk = root / "junk"
    junk.mkdir(exist_ok=True)
    (junk / "ZQJANE.dcm").write_bytes(b"not DICOM " * 30)
    (junk / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (junk / "c.jpg").write_bytes(b"\xff\xd8" + b"\xff\xe1\xff\xff" + b"\0" * 70000)
    (junk / "d.tif").write_bytes(b"II*\0" + b"\xff" * 64)
    with (junk / "e.npy").open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<u2", "fortran_order": False, "shape": (200_000, 200_000)})
        fh.write(b"\0" * 64)
    np.save(junk / "f.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    out["folder of non-images (DICOM/PNG/JPEG/TIFF/NPY names)"] = (junk, "clear")
    empty = root / "empty"
    empty.mkdir(exist_ok=True)
    (empty / "readme.md").write_text("nothing")
    out["folder without images"] = (empty, "clear")
    out["a 60000^2 PNG header"] = (mixed / "huge.png", "clear")
    out["an 80 GB NPY header"] = (junk / "e.npy", "clear")
    if not (root / "fifo.png").exists():
        os.mkfifo(root / "fifo.png")
    out["a FIFO named .png"] = (root / "fifo.png", "clear")
    return out


def attention_cmd(target: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "mammodino", "attention", "--random-init", "--arch", "tiny", "--patch-size", "16",
            "--resolution", "64", str(target), "--out", str(out)]


def index_cmd(src: Path, cache: Path, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "mammodino", "index", str(src), str(cache), "--size", "64", "--workers", str(workers),
            "--no-progress"]


def planted_bytes(text: str, folder: Path | None = None) -> int:
    """Bytes of PLANTED strings in ``text`` and in every file (and file name) under ``folder``."""
    from support.scan import find_strings

    n = sum(text.count(s) * len(s) for s in PLANTED)
    if folder is not None and Path(folder).exists():
        n += sum(len(needle) for _, needle in find_strings(folder, PLANTED))
        for _, dirs, files in os.walk(os.fsencode(folder)):
            for name in dirs + files:
                n += sum(name.count(s.encode()) * len(s) for s in PLANTED)
    return n
