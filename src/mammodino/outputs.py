"""Output paths that never overwrite what a user had.

Every command that writes a file or a folder (``export``, ``embed``, ``attention``,
``preview``, ``probe``, ``report``, ``predict``) checks its output here *before* any work
starts: a path that exists as the wrong kind (a file where a folder goes, a folder or FIFO
where a file goes), or an output folder that already holds the files the command would
write, is one clear :class:`~mammodino.errors.UserError`; nothing is replaced. The one
exception is a file this tool itself wrote and can rewrite from its inputs (``report.html``
regenerated in its run folder), recognised by a predicate the caller passes.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from mammodino.errors import UserError


def _kind(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "something unreadable"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "a FIFO, socket or device"


def _parent_ok(path: Path, flag: str) -> None:
    """The first existing ancestor must be a folder (else mkdir fails with a raw error later)."""
    for parent in path.absolute().parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is {_kind(parent)}, not a folder")
            return


def new_file(path: str | Path, flag: str = "--out", replace_if: Callable[[Path], bool] | None = None) -> Path:
    """A file the command will create. Refused when anything exists at ``path`` (unless
    it is a regular file for which ``replace_if(path)`` is true)."""
    path = Path(path)
    if os.path.lexists(path):
        kind = _kind(path)
        if kind == "a file" and replace_if is not None and replace_if(path):
            return path
        raise UserError(f"{flag} {path}: already exists ({kind}); nothing is overwritten: choose another path "
                        "or remove it")
    _parent_ok(path, flag)
    return path


def output_folder(path: str | Path, flag: str = "--out", will_write: Iterable[str] = ()) -> Path:
    """A folder the command writes into (created when absent). Refused when ``path`` exists
    and is not a folder, or when it already holds a file matching one of ``will_write``
    (names or glob patterns of the command's own outputs)."""
    path = Path(path)
    if os.path.lexists(path):
        if not path.is_dir():
            raise UserError(f"{flag} {path}: exists and is {_kind(path)}, not a folder; nothing is overwritten: "
                            "choose another path")
        patterns = list(will_write)
        if patterns:
            try:
                names = sorted(os.listdir(path))
            except OSError as exc:
                raise UserError(f"{flag} {path}: cannot be read ({exc.strerror or exc})") from None
            clash = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
            if clash:
                shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
                raise UserError(f"{flag} {path}: already holds {shown} from an earlier run; nothing is "
                                "overwritten: choose another folder or remove them")
    else:
        _parent_ok(path, flag)
    return path
