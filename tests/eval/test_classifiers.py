"""Probes on synthetic features with a known answer, breast-level aggregation."""

import numpy as np
import pytest

from mammodino.eval.levels import breast_level
from mammodino.eval.metrics import auc, macro_auc
from mammodino.eval.classifiers import KNNProbe, LogisticProbe
from mammodino.eval.splits import patient_split


def _separable(shift, seed=0, n_patients=150, dim=20):
    """Two images per patient, same label; the first 3 dims carry the label times ``shift``."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, n_patients), 2)
    groups = np.repeat(np.arange(n_patients), 2)
    X = rng.normal(0, 1, (2 * n_patients, dim))
    X[:, :3] += shift * y[:, None]
    return X, y, groups


@pytest.mark.parametrize("probe_cls", [LogisticProbe, KNNProbe])
def test_separable_features_reach_high_auc_and_noise_stays_near_half(probe_cls):
    for shift, lo, hi in ((3.0, 0.95, 1.0), (0.0, 0.35, 0.65)):
        X, y, groups = _separable(shift)
        train, test = patient_split(groups, y, 0.3, seed=0)
        p = probe_cls(n_classes=2).fit(X[train], y[train], groups[train]).predict_proba(X[test])
        assert p.shape == (len(test), 2) and np.allclose(p.sum(1), 1)
        assert lo <= auc(y[test], p[:, 1]) <= hi, (probe_cls.name, shift)


def test_logistic_picks_c_on_validation_and_reports_it():
    X, y, groups = _separable(3.0)
    probe = LogisticProbe(2).fit(X, y, groups)
    assert probe.C in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    assert probe.c_selection.startswith("validation") and len(probe.val_scores) == 6


def test_logistic_falls_back_to_default_c_with_few_patients():
    X = np.random.default_rng(0).normal(size=(4, 3))
    probe = LogisticProbe(2).fit(X, np.array([0, 0, 1, 1]), np.array(["a", "b", "c", "c"]))
    assert probe.C == 1.0 and "default" in probe.c_selection


def test_multiclass_probe_fills_missing_class_columns():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 3], 20)  # class 2 absent from training
    X = rng.normal(0, 1, (60, 5)) + np.eye(5)[y] * 4
    for probe in (LogisticProbe(4), KNNProbe(4)):
        p = probe.fit(X, y, np.arange(60)).predict_proba(X)
        assert p.shape == (60, 4) and np.allclose(p[:, 2], 0)
        assert macro_auc(y, p) > 0.95


def test_knn_uses_at_most_the_training_rows():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.9]])
    p = KNNProbe(2, k=20).fit(X, np.array([0, 1, 0])).predict_proba(np.array([[0.0, 1.0]]))
    assert p[0, 0] > 0.9


def test_breast_level_means_views_and_takes_the_worst_label():
    y = np.array([0, 1, 0, 0, 2])
    probs = np.array([[0.8, 0.2, 0], [0.4, 0.6, 0], [1, 0, 0], [0.6, 0.4, 0], [0, 0, 1.0]])
    breast = np.array(["p1|L", "p1|L", "p1|R", "p1|R", "p2|L"])
    groups = np.array(["p1", "p1", "p1", "p1", "p2"])
    yb, pb, gb, keys = breast_level(y, probs, breast, groups)
    assert keys.tolist() == ["p1|L", "p1|R", "p2|L"]
    assert yb.tolist() == [1, 0, 2]
    assert np.allclose(pb[0], [0.6, 0.4, 0]) and np.allclose(pb[1], [0.8, 0.2, 0])
    assert gb.tolist() == ["p1", "p1", "p2"]
