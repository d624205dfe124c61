"""Frozen-feature probes: logistic regression and weighted kNN.

Both return class probabilities for every class of the task (columns for classes the
training subset lacks are zero), so metrics and breast-level averaging see one layout.

* :class:`LogisticProbe`: features standardised with training statistics, sklearn
  ``LogisticRegression`` (lbfgs, multinomial for multi-class, ``class_weight="balanced"``
  because screening tasks are heavily imbalanced and balanced accuracy is reported), the
  inverse regularisation ``C`` chosen on a patient-level validation split carved from the
  training patients (grid 1e-3 .. 1e2), then refitted on all training rows.
* :class:`KNNProbe`: cosine similarity on standardised, L2-normalised features, the k = 20
  nearest training rows vote with weight ``exp(sim / 0.07)`` (the DINO kNN protocol),
  votes normalised to probabilities.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (40, 8)), rng.normal(3, 1, (40, 8))]; y = np.r_[[0] * 40, [1] * 40]
    >>> p = KNNProbe(n_classes=2).fit(X, y).predict_proba(X)
    >>> bool((p.argmax(1) == y).mean() > 0.9)
    True
"""

from __future__ import annotations

import warnings

import numpy as np

from mammodino.eval import metrics
from mammodino.eval.splits import validation_split

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)


class _Standardiser:
    def fit(self, X):
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)
        return self

    def transform(self, X):
        return (X - self.mean) / self.std


def _full_proba(probs: np.ndarray, fitted_classes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((probs.shape[0], n_classes), dtype=np.float64)
    out[:, fitted_classes.astype(int)] = probs
    return out


def _score(y: np.ndarray, probs: np.ndarray, n_classes: int) -> float:
    if n_classes == 2:
        return metrics.auc(y == 1, probs[:, 1])
    return metrics.macro_auc(y, probs)


class LogisticProbe:
    """Standardise, then L2-regularised logistic regression with ``C`` picked on validation."""

    name = "logistic"

    def __init__(self, n_classes: int, c_grid=C_GRID, max_iter: int = 2000, seed: int = 0):
        self.n_classes = n_classes
        self.c_grid = tuple(c_grid)
        self.max_iter = max_iter
        self.seed = seed
        self.C = None
        self.c_selection = ""
        self.val_scores: dict[float, float] = {}

    def _fit_one(self, X, y, C):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=self.max_iter, class_weight="balanced")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at tiny C is expected
            model.fit(X, y)
        return model

    def fit(self, X, y, groups=None):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.scaler = _Standardiser().fit(X)
        Xs = self.scaler.transform(X)
        split = validation_split(groups if groups is not None else np.arange(len(y)), y, seed=self.seed)
        if split is None or len(self.c_grid) == 1:
            self.C = 1.0 if len(self.c_grid) != 1 else self.c_grid[0]
            self.c_selection = "default C=1 (too few patients per class for a validation split)"
        else:
            fit_idx, val_idx = split
            sc = _Standardiser().fit(X[fit_idx])
            Xf, Xv = sc.transform(X[fit_idx]), sc.transform(X[val_idx])
            best = None
            for C in self.c_grid:
                m = self._fit_one(Xf, y[fit_idx], C)
                p = _full_proba(m.predict_proba(Xv), m.classes_, self.n_classes)
                s = _score(y[val_idx], p, self.n_classes)
                self.val_scores[C] = s
                if np.isfinite(s) and (best is None or s > best[0] + 1e-12):
                    best = (s, C)
            self.C = best[1] if best else 1.0
            self.c_selection = f"validation ({len(set(np.asarray(groups)[val_idx]) if groups is not None else len(val_idx))} patients)"
        self.model = self._fit_one(Xs, y, self.C)
        return self

    def predict_proba(self, X) -> np.ndarray:
        Xs = self.scaler.transform(np.asarray(X, dtype=np.float64))
        return _full_proba(self.model.predict_proba(Xs), self.model.classes_, self.n_classes)

    def info(self) -> dict:
        return {"C": self.C, "c_selection": self.c_selection}


class KNNProbe:
    """Weighted cosine kNN (k = 20, temperature 0.07)."""

    name = "knn"

    def __init__(self, n_classes: int, k: int = 20, temperature: float = 0.07, chunk: int = 2048):
        self.n_classes = n_classes
        self.k = k
        self.temperature = temperature
        self.chunk = chunk

    def _embed(self, X):
        Z = self.scaler.transform(np.asarray(X, dtype=np.float64))
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def fit(self, X, y, groups=None):
        self.scaler = _Standardiser().fit(np.asarray(X, dtype=np.float64))
        self.train = self._embed(X)
        self.y = np.asarray(y, dtype=int)
        return self

    def predict_proba(self, X) -> np.ndarray:
        Z = self._embed(X)
        k = min(self.k, len(self.y))
        out = np.zeros((len(Z), self.n_classes))
        onehot = np.eye(self.n_classes)[self.y]
        for s in range(0, len(Z), self.chunk):
            sim = Z[s : s + self.chunk] @ self.train.T
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            w = np.exp(np.take_along_axis(sim, top, axis=1) / self.temperature)
            votes = np.einsum("nk,nkc->nc", w, onehot[top])
            out[s : s + self.chunk] = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-300)
        return out

    def info(self) -> dict:
        return {"k": min(self.k, len(self.y)), "temperature": self.temperature}


PROBES = {"logistic": LogisticProbe, "knn": KNNProbe}


def make_probe(name: str, n_classes: int, seed: int = 0):
    if name == "logistic":
        return LogisticProbe(n_classes, seed=seed)
    if name == "knn":
        return KNNProbe(n_classes)
    raise ValueError(f"unknown probe {name!r} (logistic, knn)")
