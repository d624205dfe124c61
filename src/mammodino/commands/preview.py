"""Save a PNG grid of the training samples the sampler draws from one or more caches.

Each row is one sample: the cached image with the breast outline and the crop boxes
(green = global 1, blue = global 2, yellow = locals), then the two augmented global crops with
the iBOT-masked patches tinted red, then the local crops. Use it to check that crops and masks
sit on breast tissue before spending GPU hours (`pretrain` writes the same grid to
RUN_DIR/crop_preview.png).

Examples:
  mammodino preview cache/ --out preview.png
  mammodino preview cache_ffdm/ cache_dbt/ --out preview.png --n 12 --config vit-base --seed 1
  mammodino preview cache/ --out random.png crops.sampler=random data.dbt_fraction=0.5

Arguments containing '=' (and not naming an existing folder) are config overrides
(see `configs/default.yaml`); the rest are cache folders written by `mammodino index`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Save a PNG grid of tissue-aware crops and iBOT masks drawn from a cache."


class _TrailingPositionals(argparse.ArgumentParser):
    """Lets ``key=value`` overrides follow the options (``CACHE --out x.png key=value``):
    argparse alone stops filling a positional once an option came in between."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        trailing = [a for a in extras if not a.startswith("-")]
        ns.inputs = list(getattr(ns, "inputs", None) or []) + trailing
        return ns, [a for a in extras if a.startswith("-")]


def add_arguments(p) -> None:
    if type(p) is argparse.ArgumentParser:
        p.__class__ = _TrailingPositionals
    p.add_argument("inputs", nargs="+", metavar="CACHE", help="cache folder(s); key=value config overrides may follow")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the grid")
    p.add_argument("--n", type=int, default=8, help="samples (rows), drawn as one training batch (default 8)")
    p.add_argument("--config", default="cpu-tiny", help="preset name or YAML file (default cpu-tiny, as pretrain)")
    p.add_argument("--seed", type=int, default=None, help="seed (default train.seed of the config)")
    p.add_argument("--step", type=int, default=0, help="show the batch of this training step (default 0)")


def split_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    caches, overrides = [], []
    for item in inputs:
        (overrides if "=" in item and not Path(item).is_dir() else caches).append(item)
    return caches, overrides


def run(args) -> int:
    from mammodino.config import load_config
    from mammodino.data.dataset import PretrainDataset
    from mammodino.data.preview import save_preview
    from mammodino.errors import UserError

    caches, overrides = split_inputs(args.inputs)
    if not caches:
        raise UserError("no cache folder given (usage: mammodino preview CACHE [CACHE...] --out grid.png)")
    if args.n < 1:
        raise UserError(f"--n {args.n}: need at least one sample")
    from mammodino.outputs import new_file

    new_file(args.out, "--out")
    cfg = load_config(args.config, overrides)
    dataset = PretrainDataset(caches, cfg, seed=args.seed)
    path = save_preview(dataset, args.out, n=args.n, step=args.step)
    n_dbt = len(dataset.dbt_indices)
    print(f"wrote {path}: {args.n} samples from {len(dataset)} images ({n_dbt} DBT), "
          f"sampler {cfg.crops.sampler}, seed {dataset.seed}, step {args.step}")
    return 0
