"""PNG figures of a run (matplotlib, imported only when a figure is drawn)."""

from __future__ import annotations


def available() -> bool:
    """Whether matplotlib can be imported (the training job skips figures, with a note,
    when it cannot)."""
    try:
        _pyplot()
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def loss_curve(history: list, metric: str, train_loss: str, best_epoch, title: str,
               path) -> None:
    """Training loss (left axis, log scale) and validation ``metric`` (right axis) per epoch,
    with the best validation epoch marked. ``train_loss`` says what the training loss is."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    val = [h[f"val_{metric}"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", markersize=3,
            label=f"train loss ({train_loss})", color="tab:blue")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"train loss: {train_loss}", fontsize=8)
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(epochs, val, marker="o", markersize=3, label=f"validation {metric}",
             color="tab:orange")
    if best_epoch is not None:
        best = val[epochs.index(best_epoch)]
        ax2.plot([best_epoch], [best], marker="*", markersize=14, color="tab:red",
                 linestyle="none", label=f"best epoch {best_epoch} ({metric} {best:.4g})")
    ax2.set_ylabel(f"validation {metric} (lower is better)")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def forecast_vs_actual(labels, actual, forecasts: dict, scores: dict, title: str,
                       unit: str, path) -> None:
    """One-step-ahead forecasts over the test span against the actual values; each model's
    test score (``scores[name]``, RMSE in ``unit``) in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(actual))
    ax.plot(x, actual, color="black", linewidth=1.5, label="actual")
    for name, values in forecasts.items():
        ax.plot(x, values, linewidth=1.6 if name == "lstm" else 0.9,
                label=f"{name} (test RMSE {scores[name]:.4g})")
    ticks = list(range(0, len(labels), max(1, len(labels) // 8)))
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[i] for i in ticks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
