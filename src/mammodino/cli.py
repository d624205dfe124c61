"""The ``mammodino`` command line: one subcommand per stage of the pipeline.

Each subcommand lives in ``mammodino.commands.<name>`` and exposes ``HELP`` (the one-line
help shown here), ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so that
``mammodino --help`` is instant and a broken optional stage never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# The subcommands, in the order of the pipeline; each one's help is its module's HELP.
COMMANDS = ("demo", "synth", "index", "qc", "preview", "pretrain", "embed", "probe", "attention", "report", "export",
            "finetune", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammodino",
        description="Turn an archive of unlabeled mammograms into a mammography foundation encoder.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"mammodino.commands.{name}":
                raise
            continue
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__ or module.HELP,
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
