"""Screening metrics with patient-level bootstrap confidence intervals.

Why our own AUC instead of ``sklearn.metrics.roc_auc_score``: the bootstrap resamples
*patients*, so one resample is a vector of per-image weights (how many times the image's
patient was drawn). A weighted Mann-Whitney AUC evaluates 1,000 resamples as one matrix
product over a single sort of the scores, instead of 1,000 sklearn calls; it equals
sklearn's value on unweighted data (tested), ties counted as one half.

Multi-class tasks report the macro one-vs-rest AUC (mean over the classes that have both
positives and negatives in the test set) and the balanced accuracy (mean recall over the
classes present). A resample in which a metric is undefined (for example only one class
drawn) is left out of the CI and counted in ``n_boot_valid``.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.2, 0.8, 0.9])
    >>> auc(y, s)
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS_BINARY = ("auc",)
METRICS_MULTICLASS = ("macro_auc", "balanced_accuracy")


def _weighted_auc_sorted(
    y_sorted: np.ndarray, tie_starts: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """AUC of one score vector under many weightings.

    ``y_sorted``: bool (n,), positives, in ascending score order. ``tie_starts``: start index
    of each run of equal scores. ``weights``: (R, n) non-negative weights in the same order.
    Returns (R,) AUCs, NaN where a weighting leaves no positive or no negative.
    """
    wpos = np.where(y_sorted[None, :], weights, 0.0)
    wneg = weights - wpos
    # Sum the weights within each run of tied scores.
    pos_t = np.add.reduceat(wpos, tie_starts, axis=1)
    neg_t = np.add.reduceat(wneg, tie_starts, axis=1)
    neg_below = np.cumsum(neg_t, axis=1) - neg_t
    num = (pos_t * (neg_below + 0.5 * neg_t)).sum(axis=1)
    total_pos = pos_t.sum(axis=1)
    total_neg = neg_t.sum(axis=1)
    den = total_pos * total_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den <= 0] = np.nan
    return out


def _prepare(scores: np.ndarray):
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def weighted_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Binary AUC (positives = ``y`` true/1). ``weights`` (n,) or (R, n) -> float or (R,)."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order, starts = _prepare(scores)
    single = weights is None or np.ndim(weights) == 1
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    out = _weighted_auc_sorted(y[order], starts, w[:, order])
    return float(out[0]) if single else out


def auc(y, scores) -> float:
    """Binary ROC AUC; NaN when ``y`` has a single class."""
    return weighted_auc(y, scores)


def _macro_auc_weighted(y: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest AUC for (R, n) weights -> (R,). Classes undefined in a resample
    (no positive or no negative drawn) are left out of that resample's mean."""
    per_class = []
    for c in range(probs.shape[1]):
        yc = y == c
        if not yc.any() or yc.all():
            continue
        order, starts = _prepare(probs[:, c].astype(np.float64))
        per_class.append(_weighted_auc_sorted(yc[order], starts, weights[:, order]))
    if not per_class:
        return np.full(weights.shape[0], np.nan)
    stacked = np.vstack(per_class)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(stacked)
        n_valid = valid.sum(axis=0)
        total = np.where(valid, stacked, 0.0).sum(axis=0)
        out = total / np.maximum(n_valid, 1)
    # A macro AUC needs at least two classes scored (one class alone is not "macro").
    out[n_valid < min(2, len(per_class))] = np.nan
    return out


def macro_auc(y, probs) -> float:
    """Macro one-vs-rest AUC over the classes with both positives and negatives in ``y``."""
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    return float(_macro_auc_weighted(y, probs, np.ones((1, len(y))))[0])


def _balanced_accuracy_weighted(y: np.ndarray, pred: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    recalls = []
    hit = (pred == y).astype(np.float64)
    for c in range(n_classes):
        yc = (y == c).astype(np.float64)
        if yc.sum() == 0:
            continue
        support = weights @ yc
        correct = weights @ (yc * hit)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(support > 0, correct / support, np.nan))
    if not recalls:
        return np.full(weights.shape[0], np.nan)
    stacked = np.vstack(recalls)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(np.isfinite(stacked), stacked, np.nan), axis=0)


def balanced_accuracy(y, probs) -> float:
    """Mean recall over the classes present in ``y``; predictions are ``argmax(probs)``."""
    y = np.asarray(y)
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    return float(_balanced_accuracy_weighted(y, pred, np.ones((1, len(y))), probs.shape[1])[0])


def metric_names(n_classes: int) -> tuple[str, ...]:
    return METRICS_BINARY if n_classes == 2 else METRICS_MULTICLASS


def _evaluate_weighted(name: str, y: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if name == "auc":
        scores = probs[:, 1] if probs.ndim == 2 else probs
        return weighted_auc(y == 1, scores, weights)
    if name == "macro_auc":
        return _macro_auc_weighted(y, probs, weights)
    if name == "balanced_accuracy":
        return _balanced_accuracy_weighted(y, probs.argmax(axis=1), weights, probs.shape[1])
    raise ValueError(f"unknown metric {name!r}")


@dataclass
class MetricResult:
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n_boot: int
    n_boot_valid: int

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_boot": self.n_boot,
            "n_boot_valid": self.n_boot_valid,
        }


def patient_bootstrap_weights(groups, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) weights: each resample draws the unique ``groups`` (patients) with
    replacement; an image's weight is how often its patient was drawn."""
    groups = np.asarray(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(uniq), np.full(len(uniq), 1.0 / len(uniq)), size=n_boot)
    return counts[:, inverse].astype(np.float64)


def evaluate(
    y,
    probs,
    groups,
    n_classes: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[MetricResult]:
    """Point estimates and percentile bootstrap CIs (patients resampled with replacement).

    ``y``: int class indices (n,). ``probs``: (n, C) class probabilities (binary: C = 2, the
    positive class is 1). ``groups``: (n,) patient of each row. Binary tasks give ``auc``;
    multi-class tasks give ``macro_auc`` and ``balanced_accuracy``.
    """
    y = np.asarray(y).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    n_classes = probs.shape[1] if n_classes is None else n_classes
    ones = np.ones((1, len(y)))
    weights = patient_bootstrap_weights(groups, n_boot, seed) if n_boot > 0 else np.zeros((0, len(y)))
    results = []
    for name in metric_names(n_classes):
        point = float(_evaluate_weighted(name, y, probs, ones)[0])
        boot = _evaluate_weighted(name, y, probs, weights) if n_boot > 0 else np.array([])
        boot = boot[np.isfinite(boot)]
        if len(boot) and np.isfinite(point):
            lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            lo, hi = float(lo), float(hi)
        else:
            lo = hi = float("nan")
        results.append(MetricResult(name, point, lo, hi, n_boot, int(len(boot))))
    return results


def roc_curve_points(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of a binary ROC curve, thresholds from high to low, ties as one step."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, yy = scores[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]
    tps = np.cumsum(yy)[last]
    fps = np.cumsum(~yy)[last]
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / n], np.r_[0.0, tps / p]
