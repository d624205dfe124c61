"""One self-contained HTML page for a run folder: configuration, loss curves, collapse
monitor, crop preview, probe tables with CIs, ROC curves, fine-tunes and attention maps.

Examples:
  mammodino report runs/tiny                        # writes runs/tiny/report.html
  mammodino report runs/tiny --out report.html --probe probe-rsna --probe probe-vindr

Probe results are read from RUN_DIR/probe*/results.json and from every --probe DIR; fine-tunes
from RUN_DIR/finetune*/ and every --finetune DIR (with a fine-tuned vs probe table);
attention maps from RUN_DIR/attention/*.png and every --attention DIR. Images are embedded
as base64 PNG, so the page needs nothing else. Missing parts are noted in the page.
"""

from __future__ import annotations

HELP = "One self-contained HTML page for a run folder."


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="pretraining run folder")
    p.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html); an earlier mammodino "
                                                "report there is replaced, any other file refused")
    p.add_argument("--probe", action="append", default=[], metavar="DIR", help="probe output folder (repeatable)")
    p.add_argument("--attention", action="append", default=[], metavar="DIR", help="attention PNG folder (repeatable)")
    p.add_argument("--finetune", action="append", default=[], metavar="DIR",
                   help="`mammodino finetune` output folder (repeatable; RUN_DIR/finetune*/ are found on their own)")


def run(args) -> int:
    from pathlib import Path

    from mammodino.errors import UserError
    from mammodino.eval.report import write_report

    if not Path(args.run_dir).is_dir():
        raise UserError(f"run folder {args.run_dir}: no such folder")
    from mammodino.eval.report import is_mammodino_report
    from mammodino.outputs import new_file

    target = new_file(args.out or Path(args.run_dir) / "report.html", "--out", replace_if=is_mammodino_report)
    out = write_report(args.run_dir, target, args.probe, args.attention, args.finetune)
    print(f"report: {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0
