"""Patient-level splits: a patient's images are all on one side, never on both.

A probe that sees one view of a breast in training and the other in test measures
memorisation of the patient, not the task. Every split here is drawn over *patients*
(``groups``) and stratified by the patient's label (the highest class index among the
patient's images: for the ordinal and binary tasks here, "the worst finding"), so that rare
positives land on both sides whenever there are at least two patients that carry them.

Example:
    >>> import numpy as np
    >>> groups = np.repeat(np.arange(10), 2); y = np.repeat(np.arange(10) % 2, 2)
    >>> train, test = patient_split(groups, y, test_size=0.3, seed=0)
    >>> set(groups[train]) & set(groups[test])
    set()
"""

from __future__ import annotations

import math

import numpy as np

TRAIN_WORDS = {"train", "training", "trn"}
TEST_WORDS = {"test", "testing", "tst"}
VAL_WORDS = {"val", "valid", "validation", "dev"}


def normalise_split(value) -> str:
    """'training' -> 'train', 'Test' -> 'test'; validation rows join training (the probe
    carves its own validation split from training patients); anything else -> ''."""
    v = str(value or "").strip().lower()
    if v in TRAIN_WORDS or v in VAL_WORDS:
        return "train"
    if v in TEST_WORDS:
        return "test"
    return ""


def patient_labels(groups: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique patients and each one's label (max class index over its images)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    lab = np.full(len(uniq), -1, dtype=int)
    np.maximum.at(lab, inverse, np.asarray(y, dtype=int))
    return uniq, lab


def patient_split(groups, y, test_size: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of a stratified group shuffle split.

    Each class stratum of patients sends ``round(test_size * n)`` patients to test, and at
    least one when the stratum has two or more patients (so the test set holds every class
    that can be spared). Patients never straddle the split.
    """
    groups = np.asarray(groups)
    uniq, lab = patient_labels(groups, y)
    rng = np.random.default_rng(seed)
    test_patients = np.zeros(len(uniq), dtype=bool)
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        rng.shuffle(idx)
        k = int(round(test_size * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        test_patients[idx[:k]] = True
    is_test = np.isin(groups, uniq[test_patients])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def split_from_column(splits, groups) -> tuple[np.ndarray, np.ndarray, int]:
    """Honour a label table's split column. Returns (train, test, n_patients_on_both_sides).

    The table's split is kept as published (it is what papers report on); patients that
    appear on both sides are counted so the caller can warn about them."""
    splits = np.asarray([normalise_split(s) for s in splits])
    groups = np.asarray(groups)
    train = np.flatnonzero(splits == "train")
    test = np.flatnonzero(splits == "test")
    both = len(set(groups[train]) & set(groups[test]))
    return train, test, both


def validation_split(groups, y, val_size: float = 0.2, seed: int = 0):
    """Carve (fit, val) index arrays from training rows, by patient, stratified.

    Returns ``None`` when the validation or the fitting part would miss a class (too few
    patients per class); the caller then falls back to a default regularisation.
    """
    groups = np.asarray(groups)
    y = np.asarray(y)
    classes = np.unique(y)
    uniq, lab = patient_labels(groups, y)
    if any((lab == c).sum() < 2 for c in classes):
        return None
    fit, val = patient_split(groups, y, test_size=val_size, seed=seed + 7919)
    if set(np.unique(y[fit])) != set(classes) or set(np.unique(y[val])) != set(classes):
        return None
    return fit, val


class FractionSkipped(Exception):
    """A label fraction that cannot give every class its minimum number of patients."""


def label_fraction_subset(
    groups, y, fraction: float, seed: int = 0, min_patients_per_class: int = 2
) -> np.ndarray:
    """Indices of the training rows of a random ``fraction`` of the training patients.

    Stratified by patient label; each class keeps at least ``min_patients_per_class``
    patients (``FractionSkipped`` if the training set has fewer). Subsets are nested: with
    the same seed, the 1 % patients are among the 10 % patients, which are among all.
    """
    groups = np.asarray(groups)
    y = np.asarray(y)
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    uniq, lab = patient_labels(groups, y)
    if fraction >= 1:
        return np.arange(len(groups))
    rng = np.random.default_rng(seed + 104729)
    picked = np.zeros(len(uniq), dtype=bool)
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        if len(idx) < min_patients_per_class:
            raise FractionSkipped(
                f"label fraction {fraction:g}: class {c} has {len(idx)} training patient(s), "
                f"need at least {min_patients_per_class}"
            )
        order = rng.permutation(idx)  # one permutation per class: prefixes nest
        k = max(min_patients_per_class, int(math.ceil(fraction * len(idx))))
        picked[order[:k]] = True
    return np.flatnonzero(np.isin(groups, uniq[picked]))


def task_split(joined, test_size: float = 0.3, seed: int = 0, log=print) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, test, description) for a joined task: the label table's split column when
    every row has one and both sides are non-empty (kept as published), else a stratified
    patient split. ``probe`` and ``finetune`` both call this, so for the same task, table
    and seed they hold out the same test patients."""
    if len(joined) and (joined.split != "").all():
        train, test, both = split_from_column(joined.split, joined.groups)
        if len(train) and len(test):
            if both:
                log(f"note: {both} patients are on both sides of the table's split (kept as published)")
            return train, test, "label table split column"
        log("note: the table's split leaves one side empty for these images; splitting by patient instead")
    train, test = patient_split(joined.groups, joined.y, test_size=test_size, seed=seed)
    return train, test, f"by patient, stratified, test {test_size:.0%}, seed {seed}"
