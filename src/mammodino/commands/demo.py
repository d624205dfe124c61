"""End to end on built-in synthetic phantoms, with no data of your own.

Generates phantoms (FFDM + DBT), indexes them, pretrains the cpu-tiny preset for the time
budget, embeds a held-out labelled phantom set with the pretrained encoder and with a
random-init encoder of the same architecture, probes lesion presence and density with
patient-level splits and bootstrap CIs, renders attention maps and writes the HTML report.
Prints the comparison table and writes it to DIR/summary.json. A GPU is used when present.

Examples:
  mammodino demo                     # ~10 minutes on 2 CPU cores, into ./mammodino-demo
  mammodino demo --minutes 3 --out /tmp/quick-demo
"""

from __future__ import annotations

HELP = "End to end on built-in synthetic phantoms: synth, index, pretrain, embed, probe, report."


def add_arguments(p) -> None:
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (new or empty; default ./mammodino-demo, or -2, -3... if taken)")
    p.add_argument("--minutes", type=float, default=10.0, help="time budget; training gets most of it (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes for synth/index (default: all cores)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="cpu-tiny config overrides")


def run(args) -> int:
    from mammodino.demo import run_demo

    summary = run_demo(args.out, minutes=args.minutes, seed=args.seed, workers=args.workers,
                       progress=not args.no_progress, overrides=tuple(args.overrides))
    beaten = all(t["pretrained"]["value"] > t["random-init"]["value"] for t in summary["tasks"].values())
    if not beaten:
        print("note: the pretrained encoder did not beat random init on every task at this budget; "
              "try --minutes 20", flush=True)
    return 0
