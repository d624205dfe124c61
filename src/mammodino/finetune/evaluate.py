"""Scoring a fine-tuned model: batched inference, the validation score, the test entries.

Test entries are ``probe``'s (:func:`mammodino.eval.results.metric_entries`: AUC or macro
AUC + balanced accuracy, patient-bootstrap 95 % CIs, image and breast level), with
``probe = "finetune"`` and the head named, so ``results.json`` of a fine-tune and of a probe
of the same task line up row by row.
"""

from __future__ import annotations

import numpy as np
import torch

from mammodino.eval import metrics
from mammodino.eval.levels import breast_level
from mammodino.eval.results import metric_entries
from mammodino.train.step import autocast


@torch.inference_mode()
def batched_logits(model, loader, device, precision: str = "auto", progress=None) -> np.ndarray:
    """Raw logits (n, n_outputs) of every batch of ``loader`` (dicts with ``x``, ``token_mask``)."""
    was_training = model.training
    model.eval()
    out = []
    for batch in loader:
        x = batch["x"].to(device, non_blocking=True)
        tm = batch["token_mask"].to(device, non_blocking=True)
        with autocast(device, precision):
            out.append(model(x, tm).float().cpu().numpy())
        if progress is not None:
            progress(len(x))
    model.train(was_training)
    n_out = model.head.fc.out_features
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)


def probabilities_from_logits(model, logits: np.ndarray, calibrated: bool = True) -> np.ndarray:
    """The model's probabilities for raw ``logits`` (calibrated unless ``calibrated=False``)."""
    with torch.no_grad():
        z = torch.from_numpy(np.asarray(logits, dtype=np.float32))
        z = model.calibrated_logits(z) if calibrated else z
        p = torch.sigmoid(z) if model.multilabel else torch.softmax(z, dim=1)
    return p.double().numpy()


def score(y: np.ndarray, probs: np.ndarray, multilabel: bool) -> float:
    """Validation score: AUC (binary), macro one-vs-rest AUC (multi-class), mean AUC over the
    outputs (multi-label). NaN when undefined."""
    if multilabel:
        vals = []
        for t in range(y.shape[1]):
            m = y[:, t] >= 0
            if m.any() and len(np.unique(y[m, t])) == 2:
                vals.append(metrics.auc(y[m, t] == 1, probs[m, t]))
        return float(np.mean(vals)) if vals else float("nan")
    if probs.shape[1] == 2:
        return metrics.auc(y == 1, probs[:, 1])
    return metrics.macro_auc(y, probs)


def test_entries(ls, rows: np.ndarray, probs: np.ndarray, base: dict, n_boot: int, seed: int) -> tuple[list, list]:
    """(results.json entries, ROC curves ``(label, y_bool, scores)``) on the test ``rows``."""
    entries, curves = [], []
    y, groups, breast = ls.y[rows], ls.groups[rows], ls.breast[rows]
    if ls.multilabel:
        outputs = [(t, ls.tasks[t], ["negative", ls.classes[t]]) for t in range(len(ls.tasks))]
    else:
        outputs = [(None, ls.tasks[0], list(ls.classes))]
    for t, task, classes in outputs:
        if t is None:
            yt, pt, gt, bt = y, probs, groups, breast
        else:
            m = y[:, t] >= 0
            yt, gt, bt = y[m, t], groups[m], breast[m]
            pt = np.stack([1 - probs[m, t], probs[m, t]], axis=1)
        if len(np.unique(yt)) < 2:
            continue
        b = dict(base, task=task, classes=classes)
        entries += metric_entries(b, "image", yt, pt, gt, len(classes), n_boot, seed)
        yb, pb, gb, _ = breast_level(yt, pt, bt, gt)
        if len(np.unique(yb)) >= 2:
            entries += metric_entries(b, "breast", yb, pb, gb, len(classes), n_boot, seed)
        if len(classes) == 2:
            curves.append((f"{task}, image", yt == 1, pt[:, 1]))
            curves.append((f"{task}, breast", yb == 1, pb[:, 1]))
        else:
            curves += [(f"{c} vs rest", yt == i, pt[:, i]) for i, c in enumerate(classes)]
    return entries, curves
