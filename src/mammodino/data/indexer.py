"""``mammodino index``: an archive folder -> breast-cropped uint16 cache + manifest.

Per source (a file or a per-slice DBT series), in a worker process:
read (uint16 display values, tissue bright) -> refuse a mask or label map
(:mod:`mammodino.io.label_images`) -> segment a 512-px copy -> breast box (+2%
margin) -> crop, mirror so the chest wall is on the left, resize (INTER_AREA, never up)
to a long side of ``size`` -> write image and mask ``.npy`` atomically (tmp + rename)
-> return the manifest row. The main process walks the source folder lazily, keeps a
bounded number of files in flight, appends each row to the manifest as it arrives, and
never holds the dataset (or the file list) in memory.

Resuming: sources already in the manifest with status ok or skipped are not redone;
a partial last manifest line (killed mid-write) is cut. Nothing under SRC is modified.
"""

from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mammodino import atomic
from mammodino.data import qc
from mammodino.data.cache import MANIFEST_NAME, image_relpath, mask_relpath
from mammodino.data.cache_settings import check_or_record, pectoral_setting
from mammodino.data.index_walk import Source, WalkStats, iter_sources, name_text
from mammodino.data.manifest_writer import DoneSet, ManifestWriter, repair_tail
from mammodino.data.prepare import prepare_image
from mammodino.errors import SkipFile, UserError
from mammodino.io.dicom_reader import DEFAULT_MAX_PIXELS, read_dicom, read_dicom_series
from mammodino.io.image_reader import read_image
from mammodino.io.label_images import label_image_reason
from mammodino.io.labels import load_label_table
from mammodino.io.tags import patient_from_path, view_from_path
from mammodino.locks import FolderLock
from mammodino.parent_watch import exit_with_parent, process_identity
from mammodino.privacy import KeyWriter, key_path_for, pseudonym, salt_for_cache
from mammodino.processes import clean_context
from mammodino.tissue.segmentation import MIN_SIDE


class CacheWriteError(Exception):
    """The cache folder cannot be written (disk full, quota, read-only): not a property of
    the file, so it stops the run instead of becoming a skipped row."""


CRASH_REASON = "worker process died while reading this file (crash in a native decoder or out of memory)"


@dataclass(frozen=True)
class IndexOptions:
    """What every worker needs to turn a source into a cache entry."""

    out: str
    size: int = 1024
    include_for_processing: bool = False
    salt: str = ""
    max_pixels: int = DEFAULT_MAX_PIXELS
    margin: float = 0.02
    remove_pectoral: bool = True  # the MLO muscle out of the tissue mask (not the crop)
    whole_image: bool = False  # keep the whole field of view (background, labels) with its mask
    parent: tuple | None = None  # (pid, start time) of the main process: workers end with it


@dataclass(frozen=True)
class Task:
    id: str
    rel: str
    paths: tuple
    stem: str
    reader: str
    error: str = ""
    label_laterality: str = ""
    label_view: str = ""
    path_view: str = ""  # the view spelled in the file or folder name (tags and labels win)
    path_patient: str = ""  # a CBIS-DDSM-style patient in the path (the PatientID tag wins)


@dataclass(frozen=True)
class IndexRequest:
    """The settings of one ``index_folder`` call, as given: checked by :func:`_index_folder`,
    which turns the worker-side part into :class:`IndexOptions`."""

    size: int = 1024
    workers: int = 1
    labels: object = None
    include_for_processing: bool = False
    salt: str | None = None
    progress: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    margin: float = 0.02
    remove_pectoral: bool = True
    whole_image: bool = False
    keep_source: bool = False

    def worker_options(self, out: Path, salt: str) -> IndexOptions:
        return IndexOptions(out=str(out), size=int(self.size), include_for_processing=bool(self.include_for_processing),
                            salt=salt, max_pixels=int(self.max_pixels), margin=float(self.margin),
                            remove_pectoral=bool(self.remove_pectoral), whole_image=bool(self.whole_image),
                            parent=process_identity(os.getpid()))


def index_folder(src, out, size: int = 1024, workers: int = 1, labels=None, include_for_processing: bool = False,
                 salt: str | None = None, progress: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                 margin: float = 0.02, remove_pectoral: bool = True, whole_image: bool = False,
                 keep_source: bool = False) -> dict:
    """Index every image under ``src`` into the cache folder ``out`` (see :func:`_index_folder`),
    holding the cache's lock, after checking this run's settings against the cache's own."""
    req = IndexRequest(size=size, workers=workers, labels=labels, include_for_processing=include_for_processing,
                       salt=salt, progress=progress, max_pixels=max_pixels, margin=margin,
                       remove_pectoral=remove_pectoral, whole_image=whole_image, keep_source=keep_source)
    src_path, out_path = Path(src).expanduser(), Path(out).expanduser()
    if src_path.is_dir() and int(size) >= 16:
        if out_path.exists() and not out_path.is_dir():
            raise UserError(f"{out}: exists and is not a folder")
        try:
            out_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{out}: cannot create the cache folder ({exc.strerror or exc})") from None
    if not out_path.is_dir():  # the checks of _index_folder say what is wrong
        return _index_folder(src, out, req)
    with FolderLock(out_path, "cache", command="mammodino index"):
        manifest = out_path / MANIFEST_NAME
        check_or_record(out_path, {"size": int(size), "margin": float(margin), "pectoral": pectoral_setting(remove_pectoral),
                                   "include_for_processing": bool(include_for_processing),
                                   "whole_image": bool(whole_image)},
                        has_rows=manifest.exists() and manifest.stat().st_size > 0)
        return _index_folder(src, out, req)


def _index_folder(src, out, req: IndexRequest) -> dict:
    """Index every image under ``src`` into the cache folder ``out``; returns the summary
    ``{"ok", "skipped", "already_done", "ignored", "reasons": {reason: n}, "seconds", "manifest"}``.

    ``workers``: processes (1 = in this process). ``labels``: CSV with image id + laterality
    and/or view columns (used when the tags lack them). ``salt``: pseudonym salt (default: the
    cache's own, created once in its key file ``<out>.mammodino-key``). ``progress``: tqdm bar
    and the printed summary. The manifest's ``source`` is empty and its ``stem`` is the id;
    both are in the key file (``keep_source``: also in the manifest, which then names files).
    ``whole_image``: cache the whole field of view instead of the breast box
    (still oriented and resized, with the breast mask), the input plain DINOv2 sees.
    """
    t0 = time.perf_counter()
    src, out, workers = _check_folders(src, out, req)
    manifest_path = out / MANIFEST_NAME
    salt = salt_for_cache(out, req.salt, has_rows=manifest_path.exists() and manifest_path.stat().st_size > 0)
    label_table = {}
    if req.labels:
        label_table = load_label_table(req.labels)

    repair_tail(manifest_path)
    done = DoneSet.from_manifest(manifest_path)
    _remove_stale_tmp(out)
    opts = req.worker_options(out, salt)
    pending = _PendingSources(src, out, salt, label_table, done)
    recorder = _Recorder(req.progress, req.keep_source)
    keys = KeyWriter(key_path_for(out), salt).open()
    with ManifestWriter(out) as writer:
        recorder.attach(keys, writer)
        try:
            _run_tasks(pending.tasks(), opts, workers, recorder.record)
        except CacheWriteError as exc:
            raise UserError(f"{exc}; run the same command again when there is space (done files are kept)") from None
        finally:
            keys.close()
            recorder.close_bar()

    summary = recorder.summary(pending, round(time.perf_counter() - t0, 3), manifest_path)
    if req.progress:
        print(format_summary(summary, src, out))
    return summary


def _check_folders(src, out, req: IndexRequest) -> tuple[Path, Path, int]:
    """``(src, out, workers)`` once the source is a folder, the size sane and the cache
    folder (created) is not the source."""
    src = Path(src).expanduser()
    out = Path(out).expanduser()
    if not src.is_dir():
        raise UserError(f"{src}: source folder not found (or not a folder)")
    if int(req.size) < 16:
        raise UserError(f"--size {req.size}: must be at least 16 pixels")
    workers = max(1, int(req.workers or 1))
    src_real, out_real = src.resolve(), out.resolve()
    if src_real == out_real:
        raise UserError(f"{out}: the cache folder must not be the source folder")
    out.mkdir(parents=True, exist_ok=True)
    return src, out, workers


class _PendingSources:
    """The sources not yet in the manifest, walked lazily, counting those already done."""

    def __init__(self, src: Path, out: Path, salt: str, label_table: dict, done: DoneSet):
        self.src, self.out, self.salt, self.label_table, self.done = src, out, salt, label_table, done
        self.stats = WalkStats()
        self.already_done = 0

    def _is_done(self, rel: str) -> bool:
        if pseudonym(rel, self.salt) in self.done:
            self.already_done += 1
            return True
        return False

    def tasks(self):
        for source in iter_sources(self.src, exclude=[self.out], stats=self.stats, is_done=self._is_done):
            yield _task_for(source, self.salt, self.label_table)


class _Recorder:
    """Where each finished row goes: the key file, the manifest (private copy), this run's
    counts by status, skip reason and qc reason, and the progress bar."""

    def __init__(self, progress: bool, keep_source: bool):
        self.keep_source = keep_source
        self.counts = {"ok": 0, "skipped": 0}
        self.reasons: dict[str, int] = {}
        self.qc_counts = qc.new_counts()  # this run's ok rows by qc reason
        self.bar = _progress_bar(progress)
        self.keys = self.writer = None

    def attach(self, keys: KeyWriter, writer: ManifestWriter) -> None:
        self.keys, self.writer = keys, writer

    def record(self, row: dict) -> None:
        # a reader's error text may quote a path whose name is not UTF-8 (lone surrogates)
        row = {k: name_text(v) if isinstance(v, str) else v for k, v in row.items()}
        self.keys.add(row["id"], row.get("source", ""), row.get("stem", ""))
        self.writer.write(private_row(row, self.keep_source))
        counts = self.counts
        status = row.get("status", "skipped")
        counts[status] = counts.get(status, 0) + 1
        if status == "ok":
            qc.add_to_counts(self.qc_counts, row)
        else:
            key = reason_class(row.get("reason", ""))
            self.reasons[key] = self.reasons.get(key, 0) + 1
        if self.bar is not None:
            self.bar.update(1)
            if (counts["ok"] + counts["skipped"]) % 8 == 0:
                self.bar.set_postfix(ok=counts["ok"], skipped=counts["skipped"], refresh=False)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def summary(self, pending: _PendingSources, seconds: float, manifest_path: Path) -> dict:
        return {
            "ok": self.counts.get("ok", 0),
            "skipped": self.counts.get("skipped", 0),
            "already_done": pending.already_done,
            "ignored": pending.stats.ignored,
            "ignored_by_extension": dict(pending.stats.ignored_by_extension),
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])),
            "seconds": seconds,
            "manifest": str(manifest_path),
            "qc": self.qc_counts,
        }


def _run_tasks(tasks, opts: IndexOptions, workers: int, record) -> None:
    """Process every task, on a pool of ``workers`` processes or (1) in this process,
    restoring the process-global settings the worker setup changes."""
    if workers != 1:
        _run_pool(tasks, opts, workers, record)
        return
    threads = cv2.getNumThreads()
    hugepages = _set_numpy_hugepages(False)
    _init_worker(opts)
    try:
        for task in tasks:
            record(process_task(task))
    finally:
        cv2.setNumThreads(threads)
        if hugepages is not None:
            _set_numpy_hugepages(hugepages)


def format_summary(summary: dict, src, out) -> str:
    src, out = name_text(str(src)), name_text(str(out))
    lines = [f"indexed {src} -> {out} in {summary['seconds']:.1f} s: {summary['ok']} ok, "
             f"{summary['skipped']} skipped, {summary['already_done']} already done, "
             f"{summary['ignored']} ignored by extension"]
    if summary["ignored_by_extension"]:
        lines.append("  ignored: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["ignored_by_extension"].items())))
    if summary["reasons"]:
        lines.append("  skipped by reason:")
        lines += [f"  {n:7d}  {reason}" for reason, n in summary["reasons"].items()]
    if summary.get("qc", {}).get("checked"):
        lines.append(f"  quality control: {qc.format_counts(summary['qc'])}"
                     + ("; see them with `mammodino qc`" if summary["qc"]["suspect"] else ""))
    lines.append(f"  manifest: {summary['manifest']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main-process helpers


def private_row(row: dict, keep_source: bool = False) -> dict:
    """The manifest's copy of a row: no source path, the id as stem, and no part of the path
    in a skip reason (a reader's error text may quote the file name)."""
    if keep_source:
        return row
    row = dict(row)
    source, stem = row.get("source", ""), row.get("stem", "")
    reason = row.get("reason") or ""
    if reason:
        comps = re.split(r"[/\\]", source)
        # the path, the file name, and id-like folder names (MRN12345678); not plain words
        names = {source, comps[-1], *(c for c in comps if len(c) >= 6 and re.search(r"\d", c))}
        parts = sorted((p for p in names if len(p) >= 3), key=len, reverse=True)
        for part in parts:
            reason = reason.replace(part, "<file>")
        row["reason"] = reason
    row["source"] = ""
    row["stem"] = row.get("id", "")
    return row


def _task_for(source: Source, salt: str, labels: dict) -> Task:
    lat, view = labels.get(source.stem, ("", "")) if labels else ("", "")
    return Task(id=pseudonym(source.rel, salt), rel=source.rel, paths=source.paths, stem=source.stem,
                reader=source.reader, error=source.error, label_laterality=lat, label_view=view,
                path_view=view_from_path(source.rel), path_patient=patient_from_path(source.rel))


def _remove_stale_tmp(out: Path) -> None:
    """Temporary files of a killed run (never referenced by the manifest)."""
    for top in ("images", "masks"):
        root = out / top
        if not root.is_dir():
            continue
        for shard in os.scandir(root):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                if ".tmp-" in entry.name:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass


def reason_class(reason: str) -> str:
    """Group reasons that differ only by numbers ('tissue fraction 0.0012' ~ '0.0031')."""
    return re.sub(r"\d[\d,.]*", "#", reason) if reason else "(no reason)"


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit="img", desc="index", dynamic_ncols=True, file=sys.stderr)


def _mp_context():
    return clean_context(["mammodino.data.indexer"])


def _run_pool(tasks, opts: IndexOptions, workers: int, record) -> None:
    """Bounded in-flight work on a process pool. When a worker dies (segfault in a native
    decoder, OOM kill) every file that was in flight is retried alone, so only the file that
    kills a worker again is recorded as skipped, and the run goes on."""
    ctx = _mp_context()
    max_in_flight = 2 * workers + 2

    def new_pool(n):
        return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(opts,))

    pool = new_pool(workers)
    pending: dict = {}
    it = iter(tasks)
    exhausted = False
    finished = False
    try:
        while True:
            while not exhausted and len(pending) < max_in_flight:
                task = next(it, None)
                if task is None:
                    exhausted = True
                    break
                if task.reader == "error":
                    record(_skipped_row(task, task.error))
                    continue
                pending[pool.submit(process_task, task)] = task
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = []
            for fut in done:
                task = pending.pop(fut)
                try:
                    record(fut.result())
                except BrokenProcessPool:
                    broken.append(task)
            if broken:
                suspects = broken + list(pending.values())
                pending.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                for task in suspects:
                    record(_run_isolated(task, ctx, opts))
                pool = new_pool(workers)
        finished = True
    finally:  # on an error or Ctrl-C, do not wait for in-flight files: the workers exit with us
        pool.shutdown(wait=finished, cancel_futures=True)


def _run_isolated(task: Task, ctx, opts: IndexOptions) -> dict:
    pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker, initargs=(opts,))
    try:
        return pool.submit(process_task, task).result()
    except BrokenProcessPool:
        return _skipped_row(task, CRASH_REASON)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- worker side

_OPTS: IndexOptions | None = None


def _init_worker(opts: IndexOptions) -> None:
    global _OPTS
    _OPTS = opts
    if opts.parent and opts.parent[0] != os.getpid():
        exit_with_parent(opts.parent)
    cv2.setNumThreads(1)  # one process per core already
    _set_numpy_hugepages(False)


def _set_numpy_hugepages(enabled: bool) -> bool | None:
    """numpy asks the kernel for transparent huge pages on large arrays; with THP
    defrag=madvise every fresh 2 MB page can trigger direct compaction, which cost up to
    0.5 s of system time per 26 M-pixel mammogram here. Returns the previous setting."""
    try:
        return bool(np._core.multiarray._set_madvise_hugepage(enabled))
    except AttributeError:  # other numpy versions: leave it alone
        return None


def _base_row(task: Task) -> dict:
    return {"id": task.id, "source": task.rel, "stem": task.stem}


def _skipped_row(task: Task, reason: str) -> dict:
    row = _base_row(task)
    row.update(status="skipped", reason=_clean_reason(reason))
    return row


def _clean_reason(reason: str, limit: int = 300) -> str:
    text = re.sub(r"[^\x20-\x7e]", "?", str(reason))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def process_task(task: Task) -> dict:
    """One source -> cache files + manifest row. Never raises for bad input."""
    opts = _OPTS
    if task.reader == "error":
        return _skipped_row(task, task.error)
    try:
        return _process(task, opts)
    except CacheWriteError:
        raise
    except SkipFile as exc:
        return _skipped_row(task, exc.reason)
    except MemoryError:
        return _skipped_row(task, "out of memory while reading")
    except Exception as exc:  # noqa: BLE001 - a bad file must not stop a million-file run
        text = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
        return _skipped_row(task, f"unexpected error ({text})")


def _read(task: Task, opts: IndexOptions):
    if task.reader == "series":
        return read_dicom_series(task.paths, include_for_processing=opts.include_for_processing,
                                 max_pixels=opts.max_pixels, dtype=np.uint16)
    if task.reader == "image":
        return read_image(task.paths[0], max_pixels=opts.max_pixels, dtype=np.uint16)
    return read_dicom(task.paths[0], include_for_processing=opts.include_for_processing,
                      max_pixels=opts.max_pixels, dtype=np.uint16)


def _process(task: Task, opts: IndexOptions) -> dict:
    image = _read(task, opts)
    # (an image too small to hold a breast keeps that reason: a 1 x 2 px fixture has 2 levels)
    label_map = min(image.pixels.shape[-2:]) >= MIN_SIDE and label_image_reason(image.pixels)
    if label_map:
        raise SkipFile(label_map)  # a dataset's masks beside its images (DDSM label PNGs, ROI masks)
    meta = image.meta
    view = meta.get("view") or task.label_view or task.path_view
    prep = prepare_image(image, opts.size, opts.margin, view=view, remove_pectoral=opts.remove_pectoral,
                         whole_image=opts.whole_image)
    del image
    seg, flipped, cached, mask = prep.seg, prep.flipped, prep.pixels, prep.mask
    out_h, out_w = mask.shape
    if meta.get("laterality"):
        laterality, lat_source = meta["laterality"], "tag"
    elif task.label_laterality:
        laterality, lat_source = task.label_laterality, "labels"
    else:
        laterality, lat_source = ("R" if flipped else "L"), "image"


    out = Path(opts.out)
    try:
        save_npy_atomic(out / image_relpath(task.id), cached)
        save_npy_atomic(out / mask_relpath(task.id), mask)
    except OSError as exc:
        raise CacheWriteError(f"cannot write the cache under {out}: {exc.strerror or exc} "
                              "(disk full, quota or read-only?)") from None
    row = _base_row(task)
    row.update(
        kind=meta.get("kind", "ffdm"),
        slices=int(cached.shape[0]) if cached.ndim == 3 else 1,
        laterality=laterality,
        view=view or "",
        laterality_source=lat_source,
        patient_key=pseudonym(meta.get("patient_id") or task.path_patient or None, opts.salt),
        study_key=pseudonym(meta.get("study_uid"), opts.salt),
        **qc.segmentation_fields(seg, flipped),
        cache_height=int(out_h),
        cache_width=int(out_w),
        image_file=image_relpath(task.id),
        mask_file=mask_relpath(task.id),
        status="ok",
        reason="",
    )
    row["qc"], row["qc_reason"] = qc.check(row, prep.breast)
    return row


def save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    """np.save to a temporary name in the same folder, then rename: a killed run never
    leaves a half-written file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)

    atomic.atomic_write(path, write, suffix=f".tmp-{os.getpid()}")
