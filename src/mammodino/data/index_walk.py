"""Find the images under an archive folder, one directory at a time (streaming).

Rules (documented in docs/ingest.md):

- Directories are walked depth first in sorted order; symbolic links to directories are
  followed but every real directory is visited once (``(st_dev, st_ino)``), so link loops
  end. The cache folder is never walked when it lies inside the source.
- Hidden files and folders (``.name``: ``.git``, ``.snapshot``, a film phantom set's
  ``.truth/`` masks), ``DICOMDIR`` and files with a known non-image extension
  (:data:`IGNORED_EXTENSIONS`: tables, text, archives, checkpoints ...) are ignored
  silently and only counted.
- ``.png .tif .tiff .jpg .jpeg .pgm .pnm .npy`` go to the image reader; every other file (``.dcm``, no
  extension, UID-like names ``1.2.840...``, anything unknown) is tried as DICOM and is
  reported with a reason when it is not one.
- One-file-per-slice DBT: in a directory with several DICOM files, single-frame files that
  share a SeriesInstanceUID form one volume when the series is Breast Tomosynthesis or
  the files have different ImagePositionPatient. Only a few header tags are read for this.
  Several single-frame FFDM images of one series (RSNA keeps a patient's 4 views in one
  series) stay separate images.
- Names that are not valid UTF-8 (Linux file names are bytes): the file is read through its
  real name, but every text made from the name (``rel``, ``stem``: what is hashed into the
  id and written to the key file) shows the undecodable bytes as ``\\xNN``
  (:func:`name_text`), so nothing downstream meets a lone surrogate.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path

from mammodino.io import uids
from mammodino.io.image_reader import IMAGE_EXTENSIONS as READER_EXTENSIONS

IMAGE_EXTENSIONS = set(READER_EXTENSIONS)  # the image reader's formats, one list
IGNORED_EXTENSIONS = {
    ".mammodino-key",  # a cache's private key file (beside a cache made inside SRC)
    ".csv", ".tsv", ".txt", ".md", ".rst", ".rtf", ".json", ".jsonl", ".xml", ".html", ".htm", ".pdf",
    ".yaml", ".yml", ".ini", ".cfg", ".toml", ".log", ".py", ".sh", ".bat", ".ipynb",
    ".xls", ".xlsx", ".doc", ".docx", ".ppt", ".pptx", ".odt", ".ods",
    ".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar",
    ".md5", ".sha1", ".sha256", ".sig", ".db", ".sqlite", ".parquet", ".feather", ".h5", ".hdf5",
    ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".npz",
}
IGNORED_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini", "LOCKFILE", "VERSION"}


@dataclass(frozen=True)
class Source:
    """One unit of work: a file, or the files of a per-slice DBT series."""

    rel: str  # POSIX path relative to SRC (the folder for a series, '#xxxxxxxx' added if several)
    paths: tuple[str, ...]  # absolute paths to read
    stem: str  # what label tables call the image
    reader: str  # "dicom" | "image" | "series" | "error"
    error: str = ""  # the reason, when reader == "error"


@dataclass
class WalkStats:
    ignored: int = 0  # files skipped silently (extension/hidden)
    ignored_by_extension: dict = field(default_factory=dict)


def name_text(name: str) -> str:
    """``name`` as valid UTF-8 text: a file name holding bytes that are not UTF-8 reaches
    Python with lone surrogates (``surrogateescape``); those bytes become ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def classify(name: str) -> str:
    """'ignore' | 'image' | 'dicom' for a file name."""
    if name.startswith(".") or name in IGNORED_NAMES:
        return "ignore"
    suffix = os.path.splitext(name)[1].lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in IGNORED_EXTENSIONS:
        return "ignore"
    return "dicom"


def iter_sources(src, exclude=(), stats: WalkStats | None = None, is_done=None):
    """Yield :class:`Source` for every candidate under ``src`` (see module doc).

    ``exclude``: folders never entered (the cache). ``is_done(rel) -> bool`` lets a resumed
    run avoid reading headers of files that are already in the manifest.
    """
    src = Path(src)
    stats = stats if stats is not None else WalkStats()
    is_done = is_done or (lambda rel: False)
    excluded = set()
    for p in exclude:
        try:
            st = os.stat(p)
            excluded.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    visited: set[tuple[int, int]] = set()
    stack = [src]
    while stack:
        folder = stack.pop()
        rel_dir = name_text(folder.relative_to(src).as_posix())
        try:
            st = os.stat(folder)
        except OSError as exc:
            yield Source(rel_dir, (), name_text(folder.name), "error", f"cannot read directory ({exc.strerror or exc})")
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited or key in excluded:
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Source(rel_dir, (), name_text(folder.name), "error", f"cannot read directory ({exc.strerror or exc})")
            continue
        dicoms: list[tuple[str, str]] = []
        subdirs: list[Path] = []
        for entry in entries:
            rel = name_text(entry.name) if rel_dir == "." else f"{rel_dir}/{name_text(entry.name)}"
            try:
                if entry.is_dir(follow_symlinks=True):
                    if entry.name.startswith("."):  # .git, .Trash-1000, .snapshot, .ipynb_checkpoints,
                        stats.ignored += 1          # a phantom set's .truth/: never images to train on
                        stats.ignored_by_extension["(hidden folder)"] = stats.ignored_by_extension.get("(hidden folder)", 0) + 1
                        continue
                    subdirs.append(Path(entry.path))
                    continue
                is_file = entry.is_file(follow_symlinks=True)
            except OSError:
                is_file = False
            if not is_file:
                if classify(entry.name) == "ignore" or is_done(rel):
                    continue
                what = ("broken symbolic link" if entry.is_symlink() and not os.path.exists(entry.path)
                        else _special_kind(entry.path))
                yield Source(rel, (entry.path,), _stem(entry.name), "error", what)
                continue
            kind = classify(entry.name)
            if kind == "ignore":
                stats.ignored += 1
                ext = "(hidden)" if entry.name.startswith(".") else (os.path.splitext(entry.name)[1].lower() or entry.name)
                stats.ignored_by_extension[ext] = stats.ignored_by_extension.get(ext, 0) + 1
            elif kind == "image":
                if not is_done(rel):
                    yield Source(rel, (entry.path,), _stem(entry.name), "image")
            else:
                dicoms.append((rel, entry.path))
        yield from _group_dicoms(rel_dir, folder, dicoms, is_done)
        stack.extend(reversed(subdirs))


def _special_kind(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if stat_mod.S_ISFIFO(mode):
        return "not a regular file (named pipe)"
    if stat_mod.S_ISSOCK(mode):
        return "not a regular file (socket)"
    return "not a regular file (device)"


def _stem(name: str) -> str:
    name = name_text(name)
    base, ext = os.path.splitext(name)
    # '1.2.840.113619.2.55.3.1' is a UID, not a stem with extension '.1'
    return name if (ext[1:].isdigit() and base.replace(".", "").isdigit()) else base


def _group_dicoms(rel_dir: str, folder: Path, files: list[tuple[str, str]], is_done):
    """Yield single files at once when their header shows they cannot be a slice of a
    per-slice DBT series (multi-frame, or neither tomosynthesis nor positioned); hold the
    others until the directory is read, then group them by SeriesInstanceUID."""
    todo = [(rel, path) for rel, path in files if not is_done(rel)]
    if len(files) < 2 or not todo:
        for rel, path in todo:
            yield Source(rel, (path,), _stem(os.path.basename(path)), "dicom")
        return
    by_series: dict[str, list[tuple[str, str, dict]]] = {}
    for rel, path in todo:
        h = _light_header(path)
        candidate = (h is not None and h["frames"] <= 1 and h["series"]
                     and (h["sop"] == uids.BREAST_TOMOSYNTHESIS or h["position"] is not None))
        if candidate:
            by_series.setdefault(h["series"], []).append((rel, path, h))
        else:
            yield Source(rel, (path,), _stem(os.path.basename(path)), "dicom")
    volumes = {}
    for uid, members in by_series.items():
        tomo = any(m[2]["sop"] == uids.BREAST_TOMOSYNTHESIS for m in members)
        positions = [m[2]["position"] for m in members]
        stacked = all(p is not None for p in positions) and len(set(positions)) > 1
        if len(members) >= 2 and (tomo or stacked):
            volumes[uid] = members
        else:
            for rel, path, _ in members:
                yield Source(rel, (path,), _stem(os.path.basename(path)), "dicom")
    for uid in sorted(volumes):
        members = volumes[uid]
        rel = rel_dir if len(volumes) == 1 else f"{rel_dir}#{hashlib.sha1(uid.encode()).hexdigest()[:8]}"
        if is_done(rel):
            continue
        yield Source(rel, tuple(p for _, p, _ in members), name_text(folder.name), "series")


def _light_header(path: str) -> dict | None:
    """The 5 tags that decide series grouping; None when the file is not readable DICOM."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SeriesInstanceUID", "NumberOfFrames", "ImagePositionPatient",
                           "InstanceNumber"])
    except Exception:  # noqa: BLE001 - the worker will report it properly
        return None
    sop = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    try:
        frames = int(float(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        frames = 1
    pos = ds.get("ImagePositionPatient")
    try:
        position = tuple(round(float(v), 4) for v in pos) if pos is not None and len(pos) == 3 else None
    except (TypeError, ValueError):
        position = None
    return {"sop": str(sop or ""), "series": str(ds.get("SeriesInstanceUID") or ""), "frames": frames,
            "position": position}
