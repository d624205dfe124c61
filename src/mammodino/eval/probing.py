"""Run a task's probes end to end: join labels, split by patient, fit, score, bootstrap.

This is the Python API behind ``mammodino probe`` (and what the demo calls)::

    from mammodino.eval import run_probe
    entries = run_probe("features.npz", "phantom-lesion", labels="phantoms/labels.csv", out="probe")

For each label fraction (1 %, 10 %, 100 % of the training patients by default) and each
probe (logistic regression, kNN) it scores the test patients at image level and at breast
level (mean of a breast's image scores) with patient-bootstrap CIs. With perturbations it
re-embeds the test images with degraded inputs and applies the probes fitted on clean
training features (same split), reporting the drop.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mammodino.errors import UserError
from mammodino.eval.classifiers import make_probe
from mammodino.eval.embedding import embed_cache
from mammodino.eval.features import FeatureSet, load_features
from mammodino.eval.join import JoinedTask, compact_classes, join_labels
from mammodino.eval.levels import breast_level
from mammodino.eval.perturb import Perturbation, parse_perturbations
from mammodino.eval.results import class_counts as _class_counts
from mammodino.eval.results import markdown_table, write_results
from mammodino.eval.results import metric_entries as _entries
from mammodino.eval.splits import FractionSkipped, label_fraction_subset, task_split
from mammodino.eval.tasks import load_task
from mammodino.eval.tasks.base import TaskLabels
from mammodino.models.loading import load_backbone

DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)



def parse_fractions(spec) -> list[float]:
    if isinstance(spec, str):
        try:
            values = [float(x) for x in spec.split(",") if x.strip()]
        except ValueError as exc:
            raise UserError(f"--label-fraction {spec!r}: expected numbers like 0.01,0.1,1") from exc
    else:
        values = [float(x) for x in spec]
    bad = [v for v in values if not 0 < v <= 1]
    if bad or not values:
        raise UserError(f"--label-fraction: each value must be in (0, 1], got {spec!r}")
    return sorted(set(values))


def _reembed(fs: FeatureSet, rows: np.ndarray, pert: Perturbation, checkpoint, cache_dir, batch_size, device, log):
    """Features of ``fs`` rows recomputed from ``cache_dir`` with ``pert`` applied."""
    meta = fs.meta or {}
    enc = meta.get("encoder", {})
    if not isinstance(enc, dict):  # features written before the encoder was recorded as a dict
        if not checkpoint:
            raise UserError(f"--perturb: the features file records encoder {enc!r} without its settings; "
                            "pass --checkpoint")
        enc = {}
    random_init = enc.get("source") == "random-init" and not checkpoint  # an explicit --checkpoint wins
    ckpt = checkpoint or enc.get("checkpoint")
    if not random_init and not ckpt:
        raise UserError("--perturb needs the encoder: pass --checkpoint (the features file does not record one)")
    if not cache_dir or not (Path(cache_dir) / "manifest.csv").exists():
        raise UserError(f"--perturb needs the cache the features came from: pass --cache (got {cache_dir or 'none'})")
    model, _info = load_backbone(
        None if random_init else ckpt,
        which=enc.get("which", "teacher"),
        random_init=random_init,
        arch=enc.get("arch"),
        patch_size=enc.get("patch_size"),
        num_register_tokens=int(enc.get("num_register_tokens", 4)),
        seed=int(enc.get("seed", 0)),
        layerscale_init=enc.get("layerscale_init", 1e-5),
        img_size=int(enc.get("img_size", 224)),
    )
    kwargs = dict(
        resolution=int(meta.get("resolution", 224)),
        last4=bool(meta.get("last4", False)),
        batch_size=batch_size,
        dbt_slices=meta.get("dbt_slices", "middle"),
        device=device,
        progress=False,
    )
    ids = sorted(set(fs.id[rows].tolist()))
    # Sanity check: the same encoder and settings must reproduce the stored clean features.
    check = embed_cache(model, cache_dir, ids=ids[:1], **kwargs)
    lookup = {(i, int(z)): k for k, (i, z) in enumerate(zip(check.id, check.slice))}
    first = rows[np.flatnonzero(fs.id[rows] == ids[0])[0]]
    k = lookup.get((fs.id[first], int(fs.slice[first])))
    if k is not None:
        ref = fs.features[first]
        err = float(np.abs(check.features[k] - ref).max() / (np.abs(ref).max() + 1e-8))
        if err > 1e-3:
            log(f"warning: re-embedding does not reproduce the stored features (relative error {err:.2g}); "
                "is --checkpoint the encoder that made them?")
    log(f"re-embedding {len(ids)} test images with {pert.label}")
    pf = embed_cache(model, cache_dir, ids=ids, perturbation=pert, **kwargs)
    lookup = {(i, int(z)): k for k, (i, z) in enumerate(zip(pf.id, pf.slice))}
    idx = [lookup.get((fs.id[r], int(fs.slice[r]))) for r in rows]
    if any(i is None for i in idx):
        raise UserError("the cache no longer holds every test image of the features file")
    return pf.features[np.array(idx)]


@dataclass(frozen=True)
class ProbeOptions:
    """How :func:`run_probe` fits and scores: one value the CLI, the demo and the benchmarks
    build, instead of a dozen keyword arguments each must thread through.

    ``label_fractions``: fractions of the training patients (numbers or ``"0.01,0.1,1"``).
    ``perturb``: spec string or :class:`Perturbation` list; re-embedding needs the encoder
    (``checkpoint``, else the one the features record) and the ``cache`` (else the features').
    ``task_options``: keyword arguments of the task's label table loader.
    """

    label_fractions: str | Sequence[float] = DEFAULT_FRACTIONS
    probes: Sequence[str] = ("logistic", "knn")
    seed: int = 0
    n_boot: int = 1000
    test_size: float = 0.3
    perturb: str | Sequence[Perturbation] | None = None
    checkpoint: str | Path | None = None
    cache: str | Path | None = None
    task_options: dict | None = None
    batch_size: int = 32
    device: str = "cpu"
    plots: bool = True


@dataclass
class _Problem:
    """A joined task with its patient split: what every fit and score of one run shares."""

    task: str
    table: TaskLabels
    joined: JoinedTask
    X: np.ndarray
    train: np.ndarray
    test: np.ndarray
    split_desc: object
    level: str
    features_name: str


def run_probe(features, task: str, labels=None, options: ProbeOptions | None = None, *,
              out: str | Path | None = None, log=_stderr) -> list[dict]:
    """Probe ``features`` (NPZ path or :class:`FeatureSet`) on ``task``; returns the entries
    of ``results.json`` (also written, with ROC PNGs, a Markdown table and a summary, to
    ``out`` when given)."""
    opts = options or ProbeOptions()
    fs = features if isinstance(features, FeatureSet) else load_features(features)
    cache_dir = opts.cache or fs.cache
    if labels is None:
        raise UserError(f"task {task}: give the label table with --labels")
    fractions = parse_fractions(opts.label_fractions)
    perturb = opts.perturb
    perturbations = parse_perturbations(perturb) if isinstance(perturb, str) or perturb is None else list(perturb)
    problem = _problem(fs, features, task, labels, opts, cache_dir, log)
    entries, skipped, fitted, roc = _clean_entries(problem, fractions, opts, log)
    for pert in perturbations:
        if not fitted:
            break
        Xp = _reembed(fs, problem.joined.index[problem.test], pert, opts.checkpoint, cache_dir, opts.batch_size,
                      opts.device, log)
        for name, (model, base) in fitted.items():
            probs = model.predict_proba(Xp)
            new = _score(problem, dict(base, perturbation=pert.label), probs, opts)
            _set_drops(new, entries, name)
            entries += new
            roc[name].append((pert.label, problem.joined.y[problem.test], probs))
    if out is not None:
        _write_outputs(Path(out), entries, problem.joined, problem.table, roc, problem.split_desc, skipped, fs,
                       opts.plots, problem.test)
    return entries


def _problem(fs: FeatureSet, features, task: str, labels, opts: ProbeOptions, cache_dir, log) -> _Problem:
    """Join the task's labels and split its patients, refusing what no probe can score."""
    table = load_task(task, labels, **(opts.task_options or {}))
    joined = compact_classes(join_labels(fs, table, cache_dir))
    log(joined.summary())
    if table.n_no_label:
        log(f"note: {table.n_no_label} label table rows carry no label for {task}")
    for note in joined.notes:
        log(f"note: {note}")
    if joined.n_classes < 2 or len(joined) == 0:
        raise UserError(f"task {task}: the labelled images hold {joined.n_classes} class(es); a probe needs two")
    y, groups = joined.y, joined.groups
    train, test, split_desc = task_split(joined, opts.test_size, opts.seed, log)
    if len(test) == 0 or len(train) == 0:
        raise UserError(
            f"task {task}: {len(set(groups.tolist()))} labelled patients are too few to hold out test patients "
            "of every class; more labelled patients are needed"
        )
    if len(np.unique(y[test])) < 2:
        raise UserError(
            f"task {task}: the test split holds only class {joined.classes[int(y[test][0])]!r} "
            f"({len(set(groups[test]))} patients); more labelled patients are needed"
        )
    return _Problem(
        task=task, table=table, joined=joined, X=fs.features[joined.index], train=train, test=test,
        split_desc=split_desc, level="slice" if table.slice_level else "image",
        features_name=Path(str(features)).name if not isinstance(features, FeatureSet) else "features",
    )


def _clean_entries(p: _Problem, fractions: list[float], opts: ProbeOptions, log):
    """Fit every probe on every label fraction of the training patients and score the test
    patients. Returns ``(entries, skipped, fitted, roc)``; ``fitted`` and ``roc`` hold the
    largest fraction's probes, which the perturbations reuse."""
    y, groups, n_classes = p.joined.y, p.joined.groups, p.joined.n_classes
    entries: list[dict] = []
    skipped: list[str] = []
    fitted: dict[str, object] = {}
    roc: dict[str, list] = {}
    top = max(fractions)
    for frac in fractions:
        sub = _fraction_rows(p, frac, opts.seed, log, skipped)
        if sub is None:
            continue
        for name in opts.probes:
            model = make_probe(name, n_classes, seed=opts.seed).fit(p.X[sub], y[sub], groups[sub])
            probs = model.predict_proba(p.X[p.test])
            base = {
                "task": p.task,
                "probe": name,
                "label_fraction": float(frac),
                "n_train": int(len(sub)),
                "n_train_patients": int(len(set(groups[sub].tolist()))),
                "train_class_counts": _class_counts(y[sub], n_classes),
                "classes": list(p.joined.classes),
                "perturbation": None,
                "drop": None,
                "split": p.split_desc,
                "seed": opts.seed,
                "features": p.features_name,
                "probe_info": model.info(),
            }
            entries += _score(p, base, probs, opts)
            if frac == top:
                fitted[name] = (model, base)
                roc[name] = [("clean", y[p.test], probs)]
    return entries, skipped, fitted, roc


def _fraction_rows(p: _Problem, frac: float, seed: int, log, skipped: list[str]) -> np.ndarray | None:
    """The training rows of label fraction ``frac``, or None (logged, and noted in ``skipped``)
    when the fraction cannot be fitted."""
    y, groups = p.joined.y, p.joined.groups
    try:
        sub = p.train[label_fraction_subset(groups[p.train], y[p.train], frac, seed=seed)]
    except FractionSkipped as exc:
        msg = f"{p.task}: skipped {exc}"
        log(msg)
        skipped.append(msg)
        return None
    if len(np.unique(y[sub])) < 2:
        msg = f"{p.task}: skipped label fraction {frac:g}: the training patients hold a single class"
        log(msg)
        skipped.append(msg)
        return None
    return sub


def _score(p: _Problem, base: dict, probs: np.ndarray, opts: ProbeOptions) -> list[dict]:
    """Entries of one probe's test scores: at the task's level, and at breast level (mean of a
    breast's image scores) for image-level tasks whose breasts hold both classes."""
    y, groups, n_classes = p.joined.y[p.test], p.joined.groups[p.test], p.joined.n_classes
    entries = _entries(base, p.level, y, probs, groups, n_classes, opts.n_boot, opts.seed)
    if p.level == "image":
        yb, pb, gb, _ = breast_level(y, probs, p.joined.breast[p.test], groups)
        if len(np.unique(yb)) >= 2:
            entries += _entries(base, "breast", yb, pb, gb, n_classes, opts.n_boot, opts.seed)
    return entries


def _set_drops(new: list[dict], entries: list[dict], name: str) -> None:
    """``drop`` of each perturbed entry: the clean value of the same probe, level, metric and
    label fraction minus the perturbed one."""
    for e in new:
        clean = next(
            (c for c in entries if c["perturbation"] is None and c["probe"] == name and c["level"] == e["level"]
             and c["metric"] == e["metric"] and c["label_fraction"] == e["label_fraction"]),
            None,
        )
        if clean is not None and clean["value"] is not None and e["value"] is not None:
            e["drop"] = float(clean["value"] - e["value"])


def _write_outputs(out: Path, entries, joined, table, roc, split_desc, skipped, fs, plots, test) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_results(entries, out / "results.json")
    (out / "results.md").write_text(markdown_table(entries) + "\n")
    summary = {
        "task": joined.task,
        "classes": joined.classes,
        "label_table": table.source,
        "label_rows": joined.n_label_rows,
        "label_rows_without_image": joined.n_label_rows_unmatched,
        "table_rows_without_label": joined.n_no_label,
        "features_without_label": joined.n_features_unlabelled,
        "labelled_images": int(len(joined)),
        "patients": int(len(set(joined.groups.tolist()))),
        "class_counts": _class_counts(joined.y, joined.n_classes),
        "split": split_desc,
        "notes": joined.notes,
        "skipped": skipped,
        "features_meta": fs.meta,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if not plots:
        return
    from mammodino.eval.plots import plot_roc, roc_curves_for

    test_breast, test_groups = joined.breast[test], joined.groups[test]
    for name, runs in roc.items():
        curves = []
        for label, y, probs in runs:
            prefix = "clean" if label == "clean" else label
            if joined.n_classes == 2:
                curves.append((f"{prefix}, {'slice' if table.slice_level else 'image'}", y == 1, probs[:, 1]))
                if not table.slice_level:
                    yb, pb, _gb, _ = breast_level(y, probs, test_breast, test_groups)
                    curves.append((f"{prefix}, breast", yb == 1, pb[:, 1]))
            elif label == "clean":
                curves += roc_curves_for(joined.classes, y, probs)
        plot_roc(curves, f"{joined.task} - {name} probe (largest label fraction)", out / f"roc_{joined.task}_{name}.png")
