"""The fine-tune's training curve: loss and validation score against the step (PNG)."""

from __future__ import annotations

from pathlib import Path


def plot_training_curve(metrics_path: str | Path, out: str | Path) -> Path | None:
    """Loss (left) and validation score (right) from ``metrics.jsonl``; None when empty."""
    from mammodino.eval.plots import _plt
    from mammodino.train.metrics_log import read_metrics

    rows, _skipped = read_metrics(metrics_path)
    loss = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))]
    val = [(r["step"], r["val_score"]) for r in rows if isinstance(r.get("val_score"), (int, float))]
    if not loss and not val:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0), dpi=100)
    for ax, pts, name in ((axes[0], loss, "training loss"), (axes[1], val, "validation AUC")):
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.3, marker="." if len(pts) < 40 else None)
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
