"""Ingest benchmark: `mammodino index` images/s per worker against bare DICOM decoding.

The yardstick (floor), measured in the same run on the same files with the same number of
processes: ``pydicom.dcmread(f).pixel_array`` and nothing else. Indexing adds the VOI table
lookup, segmentation on a 512-px copy, crop + resize, two ``.npy`` writes and the manifest
row; the target is to stay within 1.25x of the floor. Both sides include starting their
process pool (forkserver) when workers > 1.

Peak memory is the largest sum of resident set sizes of this process and all its
descendants (forkserver + workers), sampled from /proc every 20 ms; it is measured with the
file list repeated 1x and 3x (symlinks under other names) to show that it does not grow
with the number of files. CPU seconds of the same process tree are reported beside wall
time: on a shared machine wall time depends on the other users, CPU time much less.

Usage:
    python benchmarks/ingest.py                         # the RSNA files in ../shared/data/rsna
    python benchmarks/ingest.py --src /data/dicoms --repeats 3
The machine is shared: figures are noisy; the best of --repeats runs is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data")) / "rsna"
TARGET = 1.25


# --------------------------------------------------------------------------- memory sampling


def _proc_sample(pid: int) -> tuple[int, int]:
    """(RSS kB, CPU ticks user+system) of one process, (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        cpu = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]), cpu
    except (OSError, IndexError, ValueError):
        pass
    return 0, 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


class Monitor:
    """Peak total RSS (MB) and CPU seconds of this process and all its descendants
    (forkserver + workers) while the block runs, sampled from /proc every 20 ms. CPU time
    is immune to other users of a shared machine, wall time is not."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_mb = 0.0
        self.cpu_s = 0.0
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def _sample(self):
        total = 0
        for pid in _descendants(os.getpid()):
            rss, cpu = _proc_sample(pid)
            total += rss
            if rss or cpu:
                self._first.setdefault(pid, cpu)
                self._last[pid] = cpu
        self.peak_mb = max(self.peak_mb, total / 1024.0)

    def __enter__(self):
        self._sample()
        self._first = dict(self._last)  # processes alive at the start count from now
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_s = sum(self._last[p] - self._first.get(p, 0) for p in self._last) / self._tick

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)


# --------------------------------------------------------------------------- the two contenders


def _decode(path: str) -> int:
    import pydicom

    return int(pydicom.dcmread(path).pixel_array.size)


def floor_run(files: list[str], workers: int) -> float:
    """Seconds for bare pydicom decoding of every file with `workers` processes."""
    t0 = time.perf_counter()
    if workers == 1:
        for f in files:
            _decode(f)
    else:
        from mammodino.data.indexer import _mp_context

        with ProcessPoolExecutor(workers, mp_context=_mp_context()) as pool:
            list(pool.map(_decode, files, chunksize=1))
    return time.perf_counter() - t0


def index_run(src: Path, workers: int, size: int) -> tuple[float, dict]:
    from mammodino.data.indexer import index_folder

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as out:
        t0 = time.perf_counter()
        summary = index_folder(src, out, size=size, workers=workers, progress=False, salt="bench")
        return time.perf_counter() - t0, summary


def breakdown(files: list[str], size: int) -> dict:
    """Where the time goes in one process: decode + VOI table, segmentation, crop/resize/save."""
    import numpy as np
    import pydicom

    from mammodino.data.indexer import save_npy_atomic
    from mammodino.data.prepare import crop_resize, expand_box, output_size
    from mammodino.io.dicom_reader import read_dicom
    from mammodino.tissue.orientation import chest_wall_on_left
    from mammodino.tissue.segmentation import segment

    t = {"bare decode": 0.0, "read_dicom (decode + VOI)": 0.0, "segment (512 px)": 0.0,
         "crop + resize + save": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(files):
            t0 = time.perf_counter()
            pydicom.dcmread(f).pixel_array
            t1 = time.perf_counter()
            img = read_dicom(f, dtype=np.uint16)
            t2 = time.perf_counter()
            seg = segment(img.pixels)
            t3 = time.perf_counter()
            H, W = img.pixels.shape
            region = expand_box(seg.box(), 0.02, W, H)
            out_size = output_size(region, size)
            flip = not chest_wall_on_left(seg.small_mask)
            save_npy_atomic(Path(tmp) / f"{i}.npy", crop_resize(img.pixels, region, out_size, flip))
            save_npy_atomic(Path(tmp) / f"{i}m.npy", seg.mask_for_region(region, out_size, flip))
            t4 = time.perf_counter()
            t["bare decode"] += t1 - t0
            t["read_dicom (decode + VOI)"] += t2 - t1
            t["segment (512 px)"] += t3 - t2
            t["crop + resize + save"] += t4 - t3
    return {k: 1000 * v / len(files) for k, v in t.items()}


def _link_copies(files: list[str], folder: Path, times: int) -> None:
    for k in range(times):
        for i, f in enumerate(files):
            os.symlink(f, folder / f"r{k}_{i:04d}.dcm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of DICOM files (default: RSNA)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)

    files = sorted(str(p) for p in args.src.rglob("*.dcm"))
    if not files:
        print(f"no .dcm files under {args.src}", file=sys.stderr)
        return 2
    print(f"{len(files)} DICOM files from {args.src}, cache long side {args.size}, "
          f"{os.cpu_count()} cores (shared machine: figures are noisy, best of {args.repeats})\n")

    rows = []
    with tempfile.TemporaryDirectory(prefix="ingest-src-") as tmp:
        src1 = Path(tmp) / "x1"
        src3 = Path(tmp) / "x3"
        src1.mkdir()
        src3.mkdir()
        _link_copies(files, src1, 1)
        _link_copies(files, src3, 3)
        n = len(files)
        if max(args.workers) > 1:  # start the forkserver once, outside every timed region
            from mammodino.data.indexer import _mp_context

            with ProcessPoolExecutor(1, mp_context=_mp_context()) as pool:
                pool.submit(int).result()
        for workers in args.workers:
            floor_wall, floor_cpu = [], []
            for _ in range(args.repeats):
                with Monitor() as mon:
                    floor_wall.append(floor_run(files, workers))
                floor_cpu.append(mon.cpu_s)
            index_wall, index_cpu, peak = [], [], 0.0
            for _ in range(args.repeats):
                with Monitor() as mon:
                    seconds, summary = index_run(src1, workers, args.size)
                assert summary["ok"] == n, summary
                index_wall.append(seconds)
                index_cpu.append(mon.cpu_s)
                peak = max(peak, mon.peak_mb)
            with Monitor() as mon3:
                seconds3, summary3 = index_run(src3, workers, args.size)
            assert summary3["ok"] == 3 * n, summary3
            fw, iw = min(floor_wall), min(index_wall)
            fc, ic = min(floor_cpu), min(index_cpu)
            rows.append(dict(workers=workers, floor=n / fw / workers, index=n / iw / workers, ratio=iw / fw,
                             floor_cpu=1000 * fc / n, index_cpu=1000 * ic / n, cpu_ratio=ic / fc,
                             peak1=peak, peak3=mon3.peak_mb, index3=3 * n / seconds3 / workers))

    print("| workers | floor img/s/worker | index img/s/worker | wall ratio | floor CPU ms/img | "
          "index CPU ms/img | CPU ratio | peak RSS, files x1 (MB) | peak RSS, files x3 (MB) | "
          "index img/s/worker, x3 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['floor']:.2f} | {r['index']:.2f} | {r['ratio']:.2f}x | {r['floor_cpu']:.0f} | "
              f"{r['index_cpu']:.0f} | {r['cpu_ratio']:.2f}x | {r['peak1']:.0f} | {r['peak3']:.0f} | "
              f"{r['index3']:.2f} |")
    print(f"\ntarget: index within {TARGET}x of the floor (ratios above; CPU ratio is the one other users "
          "of a shared machine cannot disturb)")
    print("\nper-image time in one process (ms, mean over the files):")
    for k, v in breakdown(files, args.size).items():
        print(f"  {k:28s} {v:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
