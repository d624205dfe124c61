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
import sys


def clean_context(preload: list[str] | None = None):
    """A multiprocessing context whose workers do not inherit the caller's threads:
    forkserver on Linux (``preload``: modules the server imports once, so that each worker
    starts in milliseconds), spawn elsewhere."""
    if sys.platform.startswith("linux") and "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
        return ctx
    return mp.get_context("spawn")
