"""The labelled images of a fine-tune, and their patient-level train / validation / test split.

Nothing here is new machinery: the cache's images are described as a feature-less
:class:`~mammodino.eval.features.FeatureSet` (the same rows ``embed`` writes: every FFDM
image, the middle slice standing for a DBT volume), the task adapters read the label table,
:func:`~mammodino.eval.join.join_labels` attaches labels, and the split is
:func:`~mammodino.eval.splits.task_split` then
:func:`~mammodino.eval.splits.label_fraction_subset` then
:func:`~mammodino.eval.splits.validation_split` -- the calls ``probe`` makes. So for one
task, table and seed, a fine-tune tests on exactly the probe's test patients, and validates
(early stopping, calibration) on the patients the logistic probe picks its ``C`` on.

Several tasks at once (``--task vindr-mass,vindr-calcification``) make a multi-label
problem: one sigmoid output per task, an image unlabelled for a task is left out of that
task's loss and metrics, and the split is stratified by "any positive".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mammodino.data.cache import CachedImage, open_cache
from mammodino.errors import UserError
from mammodino.eval.features import FeatureSet
from mammodino.eval.join import compact_classes, join_labels
from mammodino.eval.splits import FractionSkipped, label_fraction_subset, task_split, validation_split
from mammodino.eval.tasks import load_task


def image_table(cache_dir: str | Path) -> tuple[FeatureSet, list[CachedImage]]:
    """The image-level rows of a cache as a FeatureSet with no feature columns (for the join),
    and the cached image behind each row."""
    images = open_cache(cache_dir)

    def col(name):
        return np.array([str(im.row.get(name, "") or "") for im in images], dtype=str)

    n_slices = np.array([im.n_slices if im.is_dbt else 1 for im in images], dtype=np.int64)
    fs = FeatureSet(
        features=np.zeros((len(images), 0), np.float32),
        id=col("id"), patient_key=col("patient_key"), laterality=col("laterality"), view=col("view"),
        kind=col("kind"), stem=col("stem"),
        slice=np.array([im.n_slices // 2 if im.is_dbt else -1 for im in images], dtype=np.int64),
        n_slices=n_slices, cache=str(Path(cache_dir).resolve()),
    )
    return fs, images


@dataclass
class LabelledSet:
    """Row-aligned labelled images. ``y`` is (n,) class indices, or (n, T) in {0, 1, -1 =
    unlabelled} for multi-label tasks."""

    tasks: list[str]
    classes: list[str]  # single-label: class names; multi-label: one name per task (its positive class)
    multilabel: bool
    images: list[CachedImage]
    fs_rows: np.ndarray
    slices: np.ndarray  # slice to read (-1: FFDM)
    y: np.ndarray
    groups: np.ndarray  # in memory only, never written
    breast: np.ndarray
    split: np.ndarray
    summaries: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.fs_rows)

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def stratum(self) -> np.ndarray:
        """The label a split stratifies by: the class, or 'any positive' (multi-label)."""
        return (self.y == 1).any(axis=1).astype(int) if self.multilabel else self.y

    def class_weights(self, rows: np.ndarray) -> np.ndarray:
        """Inverse-frequency weights over ``rows`` (mean 1 over the classes present):
        classes for single-label tasks, the positive of each output for multi-label (pos_weight)."""
        if self.multilabel:
            y = self.y[rows]
            pos = (y == 1).sum(axis=0).astype(float)
            neg = (y == 0).sum(axis=0).astype(float)
            return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
        counts = np.bincount(self.y[rows], minlength=self.n_outputs).astype(float)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
        return w


def load_labelled(cache_dir, tasks: list[str], labels, task_options: dict | None = None, log=print) -> LabelledSet:
    """Join the task(s) to the cache's images (reporting what did not join)."""
    fs, images = image_table(cache_dir)
    joined_all = []
    for task in tasks:
        table = load_task(task, labels, **(task_options or {}))
        if table.slice_level:
            raise UserError(f"task {task}: slice-level tasks are not fine-tuned here (image-level tasks only)")
        joined = compact_classes(join_labels(fs, table, cache_dir))
        log(joined.summary())
        for note in joined.notes:
            log(f"note: {note}")
        if joined.n_classes < 2 or len(joined) == 0:
            raise UserError(f"task {task}: the labelled images hold {joined.n_classes} class(es); fine-tuning needs two")
        joined_all.append((table, joined))
    summaries = [{"task": j.task, "classes": j.classes, "label_table": t.source, "label_rows": j.n_label_rows,
                  "label_rows_without_image": j.n_label_rows_unmatched, "table_rows_without_label": j.n_no_label,
                  "features_without_label": j.n_features_unlabelled, "labelled_images": int(len(j)),
                  "patients": int(len(set(j.groups.tolist()))), "notes": j.notes} for t, j in joined_all]
    if len(tasks) == 1:
        j = joined_all[0][1]
        return LabelledSet(tasks=list(tasks), classes=list(j.classes), multilabel=False,
                           images=[images[i] for i in j.index], fs_rows=j.index, slices=fs.slice[j.index],
                           y=j.y.astype(np.int64), groups=j.groups, breast=j.breast, split=j.split,
                           summaries=summaries, notes=list(j.notes))
    for _t, j in joined_all:
        if j.n_classes != 2:
            raise UserError(f"task {j.task}: multi-label fine-tuning combines binary tasks; {j.task} has "
                            f"{j.n_classes} classes ({', '.join(j.classes)})")
    rows = sorted(set().union(*[set(j.index.tolist()) for _t, j in joined_all]))
    pos = {r: k for k, r in enumerate(rows)}
    Y = np.full((len(rows), len(tasks)), -1, dtype=np.int64)
    groups = np.empty(len(rows), dtype=object)
    breast = np.empty(len(rows), dtype=object)
    split = np.full(len(rows), "", dtype=object)
    for t, (_table, j) in enumerate(joined_all):
        for i, y, g, b, s in zip(j.index, j.y, j.groups, j.breast, j.split):
            k = pos[int(i)]
            Y[k, t] = int(y)
            if groups[k] is None:
                groups[k], breast[k], split[k] = g, b, s
    idx = np.array(rows, dtype=np.int64)
    return LabelledSet(tasks=list(tasks), classes=[j.classes[1] for _t, j in joined_all], multilabel=True,
                       images=[images[i] for i in idx], fs_rows=idx, slices=fs.slice[idx], y=Y, groups=groups,
                       breast=breast, split=split.astype(str), summaries=summaries)


@dataclass
class Splits:
    fit: np.ndarray  # rows the model trains on
    val: np.ndarray | None  # early stopping + calibration (None: too few patients per class)
    test: np.ndarray
    description: str
    train_all: np.ndarray = None  # every training row (before the label fraction)


class _SplitView:
    """What :func:`task_split` reads from a joined task."""

    def __init__(self, ls: LabelledSet):
        self.split, self.groups, self.y = ls.split, ls.groups, ls.stratum()

    def __len__(self):
        return len(self.y)


def make_splits(ls: LabelledSet, test_size: float, val_size: float, seed: int, label_fraction: float = 1.0,
                log=print) -> Splits:
    """train / test as ``probe`` (table split column, else stratified by patient), then the
    label fraction of the training patients, then a patient-level validation split of those."""
    strat = ls.stratum()
    train, test, desc = task_split(_SplitView(ls), test_size, seed, log)
    if len(train) == 0 or len(test) == 0:
        raise UserError(f"{', '.join(ls.tasks)}: {len(set(ls.groups.tolist()))} labelled patients are too few to "
                        "hold out test patients of every class")
    if len(np.unique(strat[test])) < 2:
        raise UserError(f"{', '.join(ls.tasks)}: the test split holds a single class; more labelled patients are needed")
    try:
        sub = train[label_fraction_subset(ls.groups[train], strat[train], label_fraction, seed=seed)]
    except FractionSkipped as exc:
        raise UserError(f"--label-fraction: {exc}") from None
    v = validation_split(ls.groups[sub], strat[sub], val_size=val_size, seed=seed)
    if v is None:
        log("note: too few training patients per class for a validation split: no early stopping and no "
            "calibration; the last step's weights are kept")
        return Splits(sub, None, test, desc, train)
    fit, val = v
    return Splits(sub[fit], sub[val], test, desc, train)

