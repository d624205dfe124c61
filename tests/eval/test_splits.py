"""Patient splits: never one patient on both sides; stratified; nested label fractions."""

import numpy as np
import pytest

from mammodino.eval.splits import (
    FractionSkipped,
    label_fraction_subset,
    normalise_split,
    patient_split,
    split_from_column,
    validation_split,
)


def _data(seed, n_patients=60):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_patients)  # 1..8 images per patient
    groups = np.repeat(np.array([f"p{i}" for i in range(n_patients)]), sizes)
    patient_label = (rng.random(n_patients) < 0.2).astype(int)
    y = np.repeat(patient_label, sizes)
    return groups, y


@pytest.mark.parametrize("seed", range(200))
def test_no_patient_on_both_sides(seed):
    groups, y = _data(seed)
    train, test = patient_split(groups, y, test_size=0.3, seed=seed)
    assert not set(groups[train]) & set(groups[test])
    assert len(train) + len(test) == len(groups)
    assert len(np.unique(y[test])) == len(np.unique(y))  # every class reaches the test set


def test_test_share_is_about_thirty_percent_of_patients():
    groups, y = _data(0, n_patients=1000)
    train, test = patient_split(groups, y, 0.3, seed=1)
    share = len(set(groups[test])) / 1000
    assert 0.27 < share < 0.33


def test_split_column_is_honoured_and_overlap_counted():
    splits = ["training", "training", "test", "test", "train"]
    groups = ["a", "b", "c", "a", "d"]
    train, test, both = split_from_column(splits, groups)
    assert train.tolist() == [0, 1, 4] and test.tolist() == [2, 3] and both == 1
    assert normalise_split("Validation") == "train" and normalise_split("TEST") == "test"


@pytest.mark.parametrize("seed", range(20))
def test_label_fractions_nest_and_keep_two_patients_per_class(seed):
    groups, y = _data(seed, n_patients=300)
    small = set(groups[label_fraction_subset(groups, y, 0.01, seed=seed)])
    mid = set(groups[label_fraction_subset(groups, y, 0.1, seed=seed)])
    full = set(groups[label_fraction_subset(groups, y, 1.0, seed=seed)])
    assert small <= mid <= full and len(full) == 300
    sub = label_fraction_subset(groups, y, 0.01, seed=seed)
    for c in (0, 1):
        assert len(set(groups[sub][y[sub] == c])) >= 2
    assert 25 <= len(mid) <= 35


def test_label_fraction_skips_with_a_message_when_a_class_is_too_rare():
    groups = np.array(["a", "b", "c", "d"])
    y = np.array([0, 0, 0, 1])
    with pytest.raises(FractionSkipped, match="class 1 has 1 training patient"):
        label_fraction_subset(groups, y, 0.1)


def test_validation_split_is_by_patient_or_none():
    groups, y = _data(3, n_patients=100)
    fit, val = validation_split(groups, y, seed=0)
    assert not set(groups[fit]) & set(groups[val])
    assert validation_split(np.array(["a", "b", "c"]), np.array([0, 0, 1])) is None
