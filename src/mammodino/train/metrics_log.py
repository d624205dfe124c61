"""metrics.jsonl (one JSON object per logged step) and TensorBoard when it is installed.

On resume the lines logged after the resumed step are dropped, so the file reads as one
uninterrupted run. A line that is not a JSON object with an integer ``step`` (hand-edited,
another tool's, binary garbage) is never a traceback and never lost: it is reported with
its line number and moved to ``metrics.jsonl.rejected`` beside the log. Only a last line
without its newline (cut by a kill) is dropped quietly.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from mammodino import atomic
from mammodino.errors import UserError

REJECTED_SUFFIX = ".rejected"


def parse_line(raw: bytes) -> dict | None:
    """The row a metrics.jsonl line holds, or None when it is not a JSON object with an integer step."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row.get("step"), bool):
        return None
    return row


def _lines(path: Path) -> list[tuple[int, bytes, dict | None, bool]]:
    """(line number, raw bytes, row or None, has its newline) of each non-empty line; [] when
    the file is absent. A folder, FIFO or device there is a clear error (a FIFO would hang)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: not a regular file (a folder, FIFO or device); move it away to continue")
    data = Path(path).read_bytes()
    out = []
    pieces = data.split(b"\n")
    for no, raw in enumerate(pieces, 1):
        if raw.strip():
            out.append((no, raw, parse_line(raw), no < len(pieces)))
    return out


def read_metrics(path: str | Path) -> tuple[list[dict], int]:
    """Logged steps of ``metrics.jsonl`` and the number of skipped (non-finite) steps; lines
    cut by a kill or not describing a step are passed over."""
    rows, skipped = [], 0
    for _no, _raw, row, _nl in _lines(Path(path)):
        if row is None:
            continue
        if "skipped" in row:
            skipped += 1
            continue
        rows.append(row)
    return rows, skipped


class MetricsLog:
    def __init__(self, run_dir: Path, start_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.fh = None
        self.tb = None
        self.rejected_lines: list[int] = []
        if not enabled:
            return
        lines = _lines(self.path)
        if lines:
            kept, rejected = [], []
            for no, raw, row, has_newline in lines:
                if row is None:
                    if has_newline:  # a last line without its newline was cut by a kill
                        rejected.append((no, raw))
                elif row["step"] <= start_step:
                    kept.append(raw)
            if rejected:
                self._set_aside(rejected)
            atomic.write_bytes(self.path, b"".join(k + b"\n" for k in kept), suffix=".tmp")
        self.fh = self.path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        except Exception:
            self.tb = None

    def _set_aside(self, rejected: list[tuple[int, bytes]]) -> None:
        """Append lines that are not step rows to metrics.jsonl.rejected, and say so."""
        side = self.path.with_name(self.path.name + REJECTED_SUFFIX)
        with open(side, "ab") as fh:
            for _no, raw in rejected:
                fh.write(raw + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rejected_lines = [no for no, _ in rejected]
        shown = ", ".join(map(str, self.rejected_lines[:10])) + (" ..." if len(rejected) > 10 else "")
        print(f"warning: {self.path}: {len(rejected)} line(s) are not a JSON object with an integer 'step' "
              f"(line {shown}); moved to {side.name}", file=sys.stderr, flush=True)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        try:
            self.fh.write(json.dumps(row) + "\n")
            self.fh.flush()
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc} (disk full or read-only?); "
                            "checkpoint-last is the last complete state: --resume when there is space") from None
        if self.tb is not None and "skipped" not in row:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.fh:
            try:
                self.fh.close()
            except OSError:
                pass  # already reported by write()
            self.fh = None
        if self.tb is not None:
            self.tb.close()
