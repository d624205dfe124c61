"""Figures for probes and reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mammodino.eval.metrics import auc, roc_curve_points


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str, out: str | Path) -> Path:
    """ROC curves ``(label, y_bool, scores)`` on one axis, AUC in the legend -> PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=110)
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1)
    for label, y, s in curves:
        y = np.asarray(y).astype(bool)
        if y.all() or not y.any():
            continue
        fpr, tpr = roc_curve_points(y, s)
        ax.plot(fpr, tpr, lw=1.6, label=f"{label} (AUC {auc(y, s):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def roc_curves_for(classes: list[str], y: np.ndarray, probs: np.ndarray, prefix: str = "") -> list:
    """Binary: one curve (positive class). Multi-class: one-vs-rest curve per class."""
    if len(classes) == 2:
        return [(f"{prefix}{classes[1]}", y == 1, probs[:, 1])]
    return [(f"{prefix}{c} vs rest", y == i, probs[:, i]) for i, c in enumerate(classes)]


def line_plot(series: dict[str, tuple[np.ndarray, np.ndarray]], title: str, ylabel: str = "",
              logy: bool = False, out: str | Path | None = None, hline: float | None = None) -> bytes:
    """Several (x, y) series on one axis -> PNG bytes (also written to ``out`` if given)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.2), dpi=100)
    for name, (x, y) in series.items():
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ok = np.isfinite(y)
        if ok.any():
            ax.plot(x[ok], y[ok], lw=1.3, label=name)
    if hline is not None:
        ax.axhline(hline, color="tab:red", ls="--", lw=1)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if out is not None:
        Path(out).write_bytes(data)
    return data
