"""Worker processes that end with the process that started them.

``index --workers N`` runs its workers under a forkserver, so a worker's parent is the
forkserver, not the ``mammodino`` process: when that process is killed (SIGKILL, or SIGTERM
without clean-up) nothing tells the workers, and they, and the forkserver they keep alive,
stayed around for good (~270 MB). A worker therefore watches the main process from a daemon
thread and exits as soon as it is gone. The process is identified by PID *and* start time,
so a recycled PID does not keep an orphan alive.
"""

from __future__ import annotations

import os
import threading
import time


def process_identity(pid: int) -> tuple | None:
    """(pid, start time) of a live process, None when it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return (pid, None)
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
    if not fields or fields[0] in ("Z", "X"):
        return None
    return (pid, fields[19])  # starttime, field 22 of proc(5)


def exit_with_parent(identity: tuple | None, interval: float = 0.25) -> None:
    """Start a daemon thread that ends this process (``os._exit``) once the process
    ``identity`` (from :func:`process_identity` in that process) no longer exists."""
    if identity is None:
        return
    pid = identity[0]

    def watch() -> None:
        while True:
            time.sleep(interval)
            if process_identity(pid) != identity:
                os._exit(1)

    threading.Thread(target=watch, name="mammodino-parent-watch", daemon=True).start()
