"""The loss-curve PNG written at the end of every run."""

from __future__ import annotations

from pathlib import Path

from mammodino.train.metrics_log import read_metrics


def plot_loss_curves(metrics_path: str | Path, out_png: str | Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, _ = read_metrics(metrics_path)
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    panels = [
        ("losses", ["loss", "dino_loss", "ibot_loss", "koleo_loss", "slice_loss", "mae_loss", "simmim_loss"]),
        ("collapse monitor", ["prototypes_in_use", "cls_std"]),
        ("schedules", ["lr", "teacher_temp"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            ys = [r.get(key) for r in rows]
            if all(y is None for y in ys):
                continue
            if title == "collapse monitor" and key == "cls_std":
                ax2 = ax.twinx()
                ax2.plot(steps, ys, color="tab:red", label=key)
                ax2.set_ylabel(key, color="tab:red")
                continue
            ax.plot(steps, ys, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:  # MAE / SimMIM log no collapse figures
            ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)
