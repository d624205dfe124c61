"""The ``mammodino`` command line: one subcommand per stage of the pipeline.

Each subcommand lives in ``mammodino.commands.<name>`` and exposes ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so that
``mammodino --help`` is instant and a broken optional stage never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). The order is the order of the pipeline.
COMMANDS = {
    "demo": "End to end on built-in synthetic phantoms: synth, index, pretrain, embed, probe, report.",
    "synth": "Write synthetic FFDM and DBT phantoms as real DICOM files plus labels.csv.",
    "index": "Read a folder of mammograms into a breast-cropped cache and a manifest.",
    "preview": "Save a PNG grid of tissue-aware crops and iBOT masks drawn from a cache.",
    "pretrain": "Self-supervised pretraining (DINO + iBOT + KoLeo + DBT slice loss) on caches.",
    "embed": "Frozen-encoder features for every image of a cache.",
    "probe": "Linear and kNN probes with patient-level splits and bootstrap CIs.",
    "attention": "Last-layer CLS attention maps overlaid on mammograms, as PNG.",
    "report": "One self-contained HTML page for a run folder.",
    "export": "Export the teacher backbone as safetensors (+ timm-compatible option).",
    "finetune": "Fine-tune an encoder + head on a labelled task (exact resume, calibrated probabilities).",
    "predict": "Score new mammograms with a fine-tuned model (CSV: image, breast, exam rows).",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammodino",
        description="Turn an archive of unlabeled mammograms into a mammography foundation encoder.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"mammodino.commands.{name}":
                raise
            continue
        p = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "__doc__", None) or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _load(name: str):
    return importlib.import_module(f"mammodino.commands.{name}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mammodino import __version__

        print(__version__)
        return 0
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:  # a clear message, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


from mammodino.errors import UserError  # noqa: E402  (kept last: tiny module, no cycles)
