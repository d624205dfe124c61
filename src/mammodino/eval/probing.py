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
from pathlib import Path

import numpy as np

from mammodino.errors import UserError
from mammodino.eval.classifiers import make_probe
from mammodino.eval.embedding import embed_cache
from mammodino.eval.features import FeatureSet, load_features
from mammodino.eval.join import compact_classes, join_labels
from mammodino.eval.levels import breast_level
from mammodino.eval.perturb import Perturbation, parse_perturbations
from mammodino.eval.results import class_counts as _class_counts
from mammodino.eval.results import markdown_table, write_results
from mammodino.eval.results import metric_entries as _entries
from mammodino.eval.splits import FractionSkipped, label_fraction_subset, task_split
from mammodino.eval.tasks import load_task
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


def run_probe(
    features,
    task: str,
    labels=None,
    *,
    label_fractions=DEFAULT_FRACTIONS,
    probes=("logistic", "knn"),
    out: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    test_size: float = 0.3,
    perturb: str | list[Perturbation] | None = None,
    checkpoint: str | Path | None = None,
    cache: str | Path | None = None,
    task_options: dict | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    plots: bool = True,
    log=_stderr,
) -> list[dict]:
    """Probe ``features`` (NPZ path or :class:`FeatureSet`) on ``task``; returns the entries
    of ``results.json`` (also written, with ROC PNGs, a Markdown table and a summary, to
    ``out`` when given)."""
    fs = features if isinstance(features, FeatureSet) else load_features(features)
    cache_dir = cache or fs.cache
    if labels is None:
        raise UserError(f"task {task}: give the label table with --labels")
    fractions = parse_fractions(label_fractions)
    perturbations = parse_perturbations(perturb) if isinstance(perturb, str) or perturb is None else list(perturb)
    table = load_task(task, labels, **(task_options or {}))
    joined = compact_classes(join_labels(fs, table, cache_dir))
    log(joined.summary())
    if table.n_no_label:
        log(f"note: {table.n_no_label} label table rows carry no label for {task}")
    for note in joined.notes:
        log(f"note: {note}")
    if joined.n_classes < 2 or len(joined) == 0:
        raise UserError(f"task {task}: the labelled images hold {joined.n_classes} class(es); a probe needs two")
    n_classes = joined.n_classes
    X = fs.features[joined.index]
    y, groups = joined.y, joined.groups
    train, test, split_desc = task_split(joined, test_size, seed, log)
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
    level = "slice" if table.slice_level else "image"
    features_name = Path(str(features)).name if not isinstance(features, FeatureSet) else "features"
    entries: list[dict] = []
    skipped: list[str] = []
    fitted: dict[str, object] = {}
    roc: dict[str, list] = {}
    top = max(fractions)
    for frac in fractions:
        try:
            sub = train[label_fraction_subset(groups[train], y[train], frac, seed=seed)]
        except FractionSkipped as exc:
            msg = f"{task}: skipped {exc}"
            log(msg)
            skipped.append(msg)
            continue
        if len(np.unique(y[sub])) < 2:
            msg = f"{task}: skipped label fraction {frac:g}: the training patients hold a single class"
            log(msg)
            skipped.append(msg)
            continue
        for name in probes:
            model = make_probe(name, n_classes, seed=seed).fit(X[sub], y[sub], groups[sub])
            probs = model.predict_proba(X[test])
            base = {
                "task": task,
                "probe": name,
                "label_fraction": float(frac),
                "n_train": int(len(sub)),
                "n_train_patients": int(len(set(groups[sub].tolist()))),
                "train_class_counts": _class_counts(y[sub], n_classes),
                "classes": list(joined.classes),
                "perturbation": None,
                "drop": None,
                "split": split_desc,
                "seed": seed,
                "features": features_name,
                "probe_info": model.info(),
            }
            entries += _entries(base, level, y[test], probs, groups[test], n_classes, n_boot, seed)
            if level == "image":
                yb, pb, gb, _ = breast_level(y[test], probs, joined.breast[test], groups[test])
                if len(np.unique(yb)) >= 2:
                    entries += _entries(base, "breast", yb, pb, gb, n_classes, n_boot, seed)
            if frac == top:
                fitted[name] = (model, base)
                roc[name] = [("clean", y[test], probs)]
    for pert in perturbations:
        if not fitted:
            break
        Xp = _reembed(fs, joined.index[test], pert, checkpoint, cache_dir, batch_size, device, log)
        for name, (model, base) in fitted.items():
            probs = model.predict_proba(Xp)
            pbase = dict(base, perturbation=pert.label)
            new = _entries(pbase, level, y[test], probs, groups[test], n_classes, n_boot, seed)
            if level == "image":
                yb, pb, gb, _ = breast_level(y[test], probs, joined.breast[test], groups[test])
                if len(np.unique(yb)) >= 2:
                    new += _entries(pbase, "breast", yb, pb, gb, n_classes, n_boot, seed)
            for e in new:
                clean = next(
                    (c for c in entries if c["perturbation"] is None and c["probe"] == name and c["level"] == e["level"]
                     and c["metric"] == e["metric"] and c["label_fraction"] == e["label_fraction"]),
                    None,
                )
                if clean is not None and clean["value"] is not None and e["value"] is not None:
                    e["drop"] = float(clean["value"] - e["value"])
            entries += new
            roc[name].append((pert.label, y[test], probs))
    if out is not None:
        _write_outputs(Path(out), entries, joined, table, roc, split_desc, skipped, fs, plots, test)
    return entries


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
