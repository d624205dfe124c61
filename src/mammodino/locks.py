"""One writer at a time on a cache or a run folder.

Two ``index`` runs into one cache duplicated manifest rows; two ``pretrain`` runs into one
``--out`` mixed their metrics and checkpoints. A writer therefore holds an exclusive
``flock`` on ``FOLDER/.mammodino.lock`` for as long as it writes. The kernel drops the lock
when the holder dies (even by SIGKILL), so a lock left by a dead process is simply taken
over; the file records the holder's PID, host and start time so that a second writer is
told who holds the folder. The file is removed on release (under the lock, and a new
holder checks it locked the file that is still on disk, so the removal cannot race).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from mammodino.errors import UserError

LOCK_NAME = ".mammodino.lock"


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8")[:4096] or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict):
        return "another process"
    pid, host = info.get("pid", "?"), info.get("host", "?")
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    cmd = str(info.get("command", ""))[:80]
    return f"PID {pid} on host {host} (since {when}{', ' + cmd if cmd else ''})"


class FolderLock:
    """``with FolderLock(folder, "cache"):`` -- exclusive, non-blocking; a UserError naming
    the holder when another live process has the folder."""

    def __init__(self, folder: str | Path, what: str = "folder", command: str = ""):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.command = command
        self.fd: int | None = None
        self.took_over: str | None = None  # holder text of a stale lock found on disk

    def acquire(self) -> "FolderLock":
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise UserError(f"{self.folder}: cannot create the lock file {self.path.name} "
                                f"({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise UserError(
                        f"{self.folder}: this {self.what} is being written by {_holder_text(self.path)}; "
                        f"wait for it to finish or use another folder (lock file {self.path})") from None
                raise UserError(f"{self.folder}: cannot lock {self.path.name} ({exc.strerror or exc})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file between our open and flock
                os.close(fd)
                continue
            previous = os.pread(fd, 4096, 0)
            if previous.strip():
                self.took_over = _holder_text(self.path)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                    "command": self.command}
            data = json.dumps(info).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            self.fd = fd
            return self
        raise UserError(f"{self.folder}: could not take the lock {self.path.name} (it kept changing)")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
