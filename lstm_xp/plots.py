"""PNG figures of a run (matplotlib, imported only when a figure is drawn)."""

from __future__ import annotations


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'lstm-xp[train]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def loss_curve(history: list, metric: str, path) -> None:
    """Training loss and validation metric per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss", color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h[f"val_{metric}"] for h in history], label=f"validation {metric}",
             color="tab:orange")
    ax2.set_ylabel(f"validation {metric}")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def forecast_vs_actual(labels, actual, forecasts: dict, title: str, path) -> None:
    """One-step-ahead forecasts over the test span against the actual values."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(actual))
    ax.plot(x, actual, color="black", linewidth=1.5, label="actual")
    for name, values in forecasts.items():
        ax.plot(x, values, linewidth=1, label=name)
    ticks = list(range(0, len(labels), max(1, len(labels) // 8)))
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[i] for i in ticks], rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
