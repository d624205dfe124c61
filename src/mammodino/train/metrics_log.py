"""metrics.jsonl (one JSON object per logged step) and TensorBoard when it is installed.

On resume the lines logged after the resumed step are dropped, so the file reads as one
uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> tuple[list[dict], int]:
    """Logged steps of ``metrics.jsonl`` and the number of skipped (non-finite) steps; lines
    cut by a kill or not describing a step are passed over."""
    rows, skipped = [], 0
    path = Path(path)
    if not path.exists():
        return rows, 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict) or "step" not in row:
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
        if not enabled:
            return
        if self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if int(row.get("step", 0)) <= start_step:
                    kept.append(line)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(k + "\n" for k in kept))
            tmp.replace(self.path)
        self.fh = self.path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        except Exception:
            self.tb = None

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        try:
            self.fh.write(json.dumps(row) + "\n")
            self.fh.flush()
        except OSError as exc:
            from mammodino.errors import UserError

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
