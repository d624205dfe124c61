"""Metrics and the patient-level bootstrap, against sklearn and known answers."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from mammodino.eval.metrics import (
    auc,
    balanced_accuracy,
    evaluate,
    macro_auc,
    patient_bootstrap_weights,
    roc_curve_points,
    weighted_auc,
)


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 6, 60).astype(float)  # many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_weighted_auc_equals_auc_of_repeated_rows():
    rng = np.random.default_rng(1)
    y, s, w = rng.integers(0, 2, 40), rng.random(40), rng.integers(0, 4, 40)
    assert weighted_auc(y, s, w) == pytest.approx(roc_auc_score(np.repeat(y, w), np.repeat(s, w)))


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 80)
    p = rng.random((80, 4))
    p /= p.sum(1, keepdims=True)
    assert macro_auc(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))


def test_single_class_auc_is_nan():
    assert np.isnan(auc(np.ones(5), np.arange(5.0)))


def test_perfect_separation_gives_auc_one_and_ci_one():
    groups = np.repeat(np.arange(50), 4)
    y = np.repeat(np.arange(50) % 2, 4)
    (r,) = evaluate(y, y + 0.01 * np.arange(200) / 200, groups, n_boot=300)
    assert (r.value, r.ci_low, r.ci_high) == (1.0, 1.0, 1.0)
    assert r.n_boot_valid == 300


def test_random_scores_give_auc_near_half_and_ci_contains_point():
    rng = np.random.default_rng(0)
    groups = np.arange(2000)
    y = rng.integers(0, 2, 2000)
    (r,) = evaluate(y, rng.random(2000), groups, n_boot=500)
    assert abs(r.value - 0.5) < 0.04
    assert r.ci_low <= r.value <= r.ci_high
    assert r.ci_low < 0.5 < r.ci_high


def test_bootstrap_resamples_whole_patients():
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    w = patient_bootstrap_weights(groups, 200, seed=3)
    # images of one patient always get the same weight, and each resample draws 3 patients
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 1] == w[:, 2]).all() and (w[:, 4] == w[:, 5]).all()
    assert (w[:, [0, 3, 4]].sum(1) == 3).all()


def test_resamples_with_one_class_are_left_out():
    # two patients: one negative, one positive -> many resamples draw a single class
    y = np.array([0, 0, 1, 1])
    groups = np.array([0, 0, 1, 1])
    (r,) = evaluate(y, np.array([0.1, 0.2, 0.8, 0.9]), groups, n_boot=400, seed=0)
    assert r.value == 1.0
    assert 100 < r.n_boot_valid < 300  # about half the resamples hold both classes
    assert r.ci_low == r.ci_high == 1.0


def test_multiclass_evaluate_reports_macro_auc_and_balanced_accuracy():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 30)
    p = np.eye(3)[y] * 0.8 + rng.random((90, 3)) * 0.3
    res = {r.metric: r for r in evaluate(y, p, np.arange(90), n_boot=200)}
    assert set(res) == {"macro_auc", "balanced_accuracy"}
    assert res["macro_auc"].value > 0.95 and res["balanced_accuracy"].value > 0.9
    for r in res.values():
        assert r.ci_low <= r.value <= r.ci_high


def test_roc_curve_points_end_at_one_one():
    fpr, tpr = roc_curve_points(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.4, 0.3]))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)
