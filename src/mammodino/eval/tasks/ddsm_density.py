"""DDSM percent density: a real-film task within reach of every checkout that has the data.

66 digitised DDSM films (all right MLO) with manual tissue masks by Tiryaki et al. (IRBM
2022): ``<root>/{train_valid,test}/fgt_seg/<stem>.png`` and
``<root>/{train_valid,test}/fgt_seg_labels/<stem>_LI.png`` (64 background, 128 adipose,
192 fibroglandular, 255 pectoral muscle). Percent density is fibroglandular / (fibroglandular
+ adipose) area. Two scores:

* ``ddsm-percent-density`` (a probe task): above vs below the median, AUC through the
  ordinary logistic / kNN probes;
* :func:`spearman_score`: a ridge regression of the percent density itself, predictions
  cross-validated by patient, Spearman correlation with a patient bootstrap 95 % CI.

Patients: the DDSM case id (``A_0040`` of ``A_0040_1.RIGHT_MLO``); one film per case here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mammodino.errors import UserError
from mammodino.eval.tasks.base import LabelRow, TaskLabels

PARTS = ("train_valid", "test")
FIBRO, ADIPOSE = 192, 128


def _root(labels) -> Path:
    if isinstance(labels, (list, tuple)):
        if len(labels) != 1:
            raise UserError(f"task ddsm-percent-density: give one ddsm_tissue folder, got {len(labels)}")
        labels = labels[0]
    if not isinstance(labels, (str, os.PathLike)):  # e.g. an array from the old spearman_score call
        raise TypeError(f"task ddsm-percent-density: the ddsm_tissue folder must be a path, got {type(labels).__name__}")
    return Path(labels)


def available(root) -> bool:
    """True when ``root`` holds the masks (callers skip the task cleanly otherwise)."""
    root = _root(root)
    return any((root / p / "fgt_seg_labels").is_dir() for p in PARTS)


def percent_density(root) -> dict[str, float]:
    """stem -> fibroglandular / (fibroglandular + adipose) area of the manual masks."""
    import cv2

    root = _root(root)
    if not available(root):
        raise UserError(f"task ddsm-percent-density: {root} holds no */fgt_seg_labels/*_LI.png masks")
    out = {}
    for part in PARTS:
        for lab_path in sorted((root / part / "fgt_seg_labels").glob("*_LI.png")):
            lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
            if lab is None:
                raise UserError(f"{lab_path}: not a readable mask image")
            fib, adi = int((lab == FIBRO).sum()), int((lab == ADIPOSE).sum())
            if fib + adi == 0:
                raise UserError(f"{lab_path}: no fibroglandular (192) or adipose (128) pixels")
            out[lab_path.name[: -len("_LI.png")]] = fib / (fib + adi)
    return out


def images(root) -> list[Path]:
    """The films (``fgt_seg/*.png``) that have a mask."""
    root = _root(root)
    pds = percent_density(root)
    return [p for part in PARTS for p in sorted((root / part / "fgt_seg").glob("*.png")) if p.stem in pds]


def patient_of(stem: str) -> str:
    return stem.split(".", 1)[0].rsplit("_", 1)[0]


def dense(labels) -> TaskLabels:
    """Percent density above (1) vs at or below (0) the median of the set."""
    pds = percent_density(labels)
    median = float(np.median(list(pds.values())))
    rows = [LabelRow(key=stem, label=int(pd > median), patient=patient_of(stem), laterality="R", view="MLO")
            for stem, pd in pds.items()]
    return TaskLabels("ddsm-percent-density", ["below-median", "above-median"], rows, str(_root(labels)), len(rows), 0,
                      notes=[f"median percent density {median:.3f} of {len(rows)} films"])


def spearman_score(fs, root, cache=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Spearman correlation of patient-cross-validated ridge predictions with the percent
    density, for the films of FeatureSet ``fs`` (matched to the masks through the cache's
    private key file, as every task is: the cache itself carries no file names)."""
    from mammodino.eval.join import join_labels

    if not hasattr(fs, "features"):  # the old call shape spearman_score(features, stems, root)
        raise TypeError("spearman_score(fs, root, cache=None): fs is a FeatureSet (embed_cache's result), "
                        f"got {type(fs).__name__}")
    pds = percent_density(root)
    stems = list(pds)
    table = TaskLabels("ddsm-percent-density", stems,
                       [LabelRow(key=s, label=i, patient=patient_of(s)) for i, s in enumerate(stems)], str(_root(root)))
    joined = join_labels(fs, table, cache or fs.cache)
    y = np.array([pds[stems[i]] for i in joined.y])
    return spearman_of(fs.features[joined.index], y, joined.groups, n_boot=n_boot, seed=seed)


def spearman_of(X: np.ndarray, y: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Ridge regression of ``y`` on ``X``, 5-fold cross-validated predictions with folds by
    ``groups`` (patients), their Spearman correlation with ``y`` and a patient bootstrap 95 % CI."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(y) < 10:
        raise UserError(f"task ddsm-percent-density: only {len(y)} embedded films carry a mask (need >= 10)")
    X = np.asarray(X, dtype=np.float64)
    groups = np.asarray(groups)
    reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    pred = cross_val_predict(reg, X, y, cv=GroupKFold(5), groups=groups)
    rho = float(spearmanr(pred, y).statistic)
    rng = np.random.default_rng(seed)
    pats = np.unique(groups)
    idx_of = {p: np.flatnonzero(groups == p) for p in pats}
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([idx_of[p] for p in rng.choice(pats, size=len(pats), replace=True)])
        r = spearmanr(pred[idx], y[idx]).statistic
        if np.isfinite(r):
            boots.append(r)
    lo, hi = (np.quantile(boots, [0.025, 0.975]) if boots else (float("nan"), float("nan")))
    return {"metric": "spearman", "value": rho, "ci_low": float(lo), "ci_high": float(hi), "n": int(len(y))}
