"""Keep freed host memory for reuse: a CPU training step otherwise pays page faults on
every large activation.

glibc's malloc serves blocks over its mmap threshold (128 KiB, raised on the fly up to
32 MiB) with fresh pages and gives freed memory at the top of the heap back to the system
past its trim threshold. A training step allocates and frees the same few-MiB activations
every step, so each step first-touches them again: on a 2-core AMD EPYC (Zen 5) the bf16
`cpu-tiny` step spent 10 % of its time in page faults inside `addmm`'s output copy
(profile: `aten::copy_` 45 ms of 400 ms). With the mmap threshold at its 32 MiB ceiling and
a 1 GiB trim threshold, freed activations stay in the heap and the next step reuses them
(measured in benchmarks/train_step.py, see the README). The price is that up to 1 GiB of
freed memory is held by the process instead of returned, which a training process reuses
anyway. Setting the trim threshold alone is worse than nothing: it switches off glibc's
dynamic mmap threshold, and every block over 128 KiB is mmapped afresh (2x slower step).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for the mmap threshold on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> dict:
    """Set glibc's mmap and trim thresholds once per process (forked loader workers inherit
    them); a no-op off glibc. Returns what was set, for the run's log and benchmarks."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return {"malloc": "unchanged (not glibc)"}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = ok and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError) as err:
        return {"malloc": f"unchanged ({err})"}
    if not ok:
        return {"malloc": "unchanged (mallopt refused)"}
    return {"malloc": "glibc", "mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
