"""``results.json``: the list of probe results, and its Markdown rendering.

Each entry is one (task, probe, level, label fraction, perturbation, metric)::

    {"task": "rsna-cancer", "probe": "logistic", "metric": "auc", "value": 0.81,
     "ci_low": 0.74, "ci_high": 0.87, "level": "image", "label_fraction": 1.0,
     "n_train": 560, "n_train_patients": 140, "n_test": 240, "n_test_patients": 60,
     "perturbation": null, "drop": null, "classes": ["no cancer", "cancer"], ...}

``drop`` (perturbed entries only) = the clean value minus the perturbed value, same probe,
same split. Entries carry counts and class names, never patient ids or image ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mammodino import atomic
from mammodino.eval.metrics import evaluate

REQUIRED_KEYS = (
    "task",
    "probe",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n_test",
    "level",
    "label_fraction",
    "n_train",
)


def validate_entries(entries: list[dict]) -> None:
    """Raise ``ValueError`` naming the first entry that lacks a required key."""
    if not isinstance(entries, list):
        raise ValueError("results.json must hold a list of entries")
    for i, e in enumerate(entries):
        missing = [k for k in REQUIRED_KEYS if k not in e]
        if missing:
            raise ValueError(f"entry {i} lacks {', '.join(missing)}")
        if e["level"] not in ("image", "breast", "slice"):
            raise ValueError(f"entry {i}: level {e['level']!r} is not image/breast/slice")


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_results(entries: list[dict], path: str | Path) -> Path:
    validate_entries(entries)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps([_clean(e) for e in entries], indent=1), suffix=".tmp")
    return path


def read_results(path: str | Path) -> list[dict]:
    entries = json.loads(Path(path).read_text())
    validate_entries(entries)
    return entries


def headline(entries: list[dict], levels=("image",)) -> dict | None:
    """The logistic probe's AUC (macro one-vs-rest for multi-class) on all training labels,
    unperturbed, at the first of ``levels`` present: the one number a comparison table shows."""
    for level in levels:
        for e in entries:
            if (e["probe"] == "logistic" and e.get("level", "image") == level and e["metric"] in ("auc", "macro_auc")
                    and float(e.get("label_fraction", 1.0)) == 1.0 and not e.get("perturbation")):
                return e
    return None


def _fmt(v, digits=3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def markdown_table(entries: list[dict]) -> str:
    """One row per entry; a ``drop`` column when any entry is perturbed."""
    has_drop = any(e.get("perturbation") for e in entries)
    head = ["task", "probe", "level", "labels", "n_train", "n_test", "metric", "value [95% CI]"]
    if has_drop:
        head[4:4] = ["input"]
        head.append("drop")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        cells = [
            e["task"],
            e["probe"],
            e["level"],
            f"{100 * e['label_fraction']:g}%",
            str(e["n_train"]),
            str(e["n_test"]),
            e["metric"],
            f"{_fmt(e['value'])} [{_fmt(e['ci_low'])}, {_fmt(e['ci_high'])}]",
        ]
        if has_drop:
            cells[4:4] = [e.get("perturbation") or "clean"]
            cells.append(_fmt(e.get("drop")) if e.get("perturbation") else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def class_counts(y, n: int) -> list[int]:
    import numpy as np

    return np.bincount(np.asarray(y).astype(int), minlength=n).tolist()


def metric_entries(base: dict, level: str, y, probs, groups, n_classes, n_boot, seed) -> list[dict]:
    """``base`` + each metric of :func:`mammodino.eval.metrics.evaluate` (value and patient
    bootstrap CI) at ``level``, with the test counts: the entries ``probe`` and ``finetune``
    write alike."""
    import numpy as np

    groups = np.asarray(groups)
    out = []
    for r in evaluate(y, probs, groups, n_classes=n_classes, n_boot=n_boot, seed=seed):
        e = dict(base)
        e.update(r.as_dict())
        e.update(
            level=level,
            n_test=int(len(y)),
            n_test_patients=int(len(set(groups.tolist()))),
            test_class_counts=class_counts(y, n_classes),
        )
        out.append(e)
    return out
