"""Subprocesses for fault injection: a file-size limit (a disk that fills up), and the peak
resident memory of a whole process tree (a pool's workers included).

Root ignores file permissions, so a full or read-only disk is simulated with
``RLIMIT_FSIZE``: with ``SIGXFSZ`` ignored, a write past the limit fails with ``EFBIG``
(``OSError: [Errno 27] File too large``) exactly where a full disk fails with ``ENOSPC``.

Peak memory: ``ru_maxrss`` of ``RUSAGE_CHILDREN`` covers only descendants that were waited
for. A ``multiprocessing`` forkserver outlives its parent and is reaped by init, so its
workers would be missed. Run as ``python tests/support/procs.py -- CMD...``, this
module makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), runs CMD, reaps
every orphaned descendant and prints the peak RSS of the largest process of the tree.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
MARKER = "@@peak-rss@@"


@dataclass
class ProcResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_bytes: int | None = None  # largest process of the tree (None when not measured)
    timed_out: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def fsize_limiter(max_bytes: int):
    """A ``preexec_fn``: files the child writes may not grow past ``max_bytes``."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(max_bytes), int(max_bytes)))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    return apply


class FullDisk:
    """A text/binary file object whose writes fail with ENOSPC after ``after_writes``
    successful ones (and whose flush/close then fail too, as on a real full disk): wrap the
    handle a writer keeps open to simulate the disk filling up in the middle of a run."""

    def __init__(self, fh, after_writes: int = 0):
        self._fh = fh
        self._left = int(after_writes)
        self.failed = False

    def _fail(self):
        self.failed = True
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), getattr(self._fh, "name", None))

    def write(self, data):
        if self._left <= 0:
            self._fail()
        self._left -= 1
        return self._fh.write(data)

    def flush(self):
        if self.failed:
            self._fail()
        return self._fh.flush()

    def close(self):
        try:
            if not self.failed:
                self._fh.flush()
        finally:
            self._fh.close()

    def __getattr__(self, name):
        return getattr(self._fh, name)


def quiet_env(threads: int = 1, **extra) -> dict:
    """The current environment with 1 thread per math library (reproducible CPU runs that
    do not fight over the 2 cores)."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[key] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd: list[str], env: dict | None = None, timeout: float = 600, fsize: int | None = None,
        peak_rss: bool = False, cwd=None) -> ProcResult:
    """Run ``cmd`` to completion, output captured (through pipes, which a file-size limit
    does not touch). ``fsize``: limit on the size of any file it writes. ``peak_rss``:
    measure the peak resident memory of the whole process tree."""
    full = [sys.executable, str(Path(__file__).resolve()), "--", *cmd] if peak_rss else list(cmd)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(full, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL,
                              preexec_fn=fsize_limiter(fsize) if fsize else None)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return ProcResult(-9, out, err, time.perf_counter() - t0, timed_out=True)
    seconds = time.perf_counter() - t0
    rc, stderr, rss = proc.returncode, proc.stderr, None
    if peak_rss:
        lines = stderr.rstrip("\n").split("\n")
        if lines and lines[-1].startswith(MARKER):
            info = json.loads(lines[-1][len(MARKER):])
            rc, rss = info["returncode"], info["peak_rss_bytes"]
            stderr = "\n".join(lines[:-1]) + ("\n" if len(lines) > 1 else "")
    return ProcResult(rc, proc.stdout, stderr, seconds, rss)


def _reap_all(deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python tests/support/procs.py -- CMD [ARGS...]", file=sys.stderr)
        return 2
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: only directly waited descendants are counted
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    rc = child.wait()
    _reap_all(time.monotonic() + 30)  # the orphaned forkserver, resource tracker, workers
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    sys.stderr.flush()
    print(MARKER + json.dumps({"returncode": rc, "peak_rss_bytes": int(peak_kb) * 1024}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
