"""Worker processes that start clean, without a copy of the parent's thread pools.

A forked child inherits OpenCV's (and OpenMP's) thread-pool state but not its threads: once
the parent has run one parallel cv2 call (a blur, a resize of a large image), a forked child
that calls ``cv2.setNumThreads`` or any parallel cv2 function waits forever on a condition
variable of threads that do not exist in it (a DataLoader worker hung in ``worker_init`` in
our test suite after the segmentation tests had run in the same process). A forkserver
starts every worker from a small server process that never ran such a call; where there is
none (macOS, Windows), spawn.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys


def clean_context(preload: list[str] | None = None):
    """A multiprocessing context whose workers do not inherit the caller's threads:
    forkserver on Linux (``preload``: modules the server imports once, so that each worker
    starts in milliseconds), spawn elsewhere."""
    if sys.platform.startswith("linux") and "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
        _start_forkserver_on_our_path()
        return ctx
    return mp.get_context("spawn")


def _start_forkserver_on_our_path() -> None:
    """Start the forkserver (once per process) with this process's import path. CPython's
    forkserver passes ``sys.path`` to its server but does not apply it (3.11): the server and
    every worker import from the interpreter's default path. A script that puts another
    checkout's ``src`` first (a benchmark run from a second worktree) then ran its own code
    in the parent and the installed copy in every index worker: a before/after comparison
    of the segmentation measured the new code twice. The parent's own path entries go in
    front of the server's through PYTHONPATH, for the server's start only."""
    from multiprocessing import forkserver

    ours = [p for p in sys.path if p and os.path.isdir(p)]
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(ours + ([before] if before else []))
    try:
        forkserver.ensure_running()
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
