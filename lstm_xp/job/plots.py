"""PNG figures of a run (matplotlib, imported only when a figure is drawn)."""

from __future__ import annotations

import math

import numpy as np


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


def _plain_ticks(ax) -> None:
    """Tick labels as plain numbers (0.9, 0.05), never 9×10⁻¹, on a log axis too."""
    from matplotlib.ticker import FuncFormatter, LogLocator, ScalarFormatter
    if ax.get_yscale() == "log":
        low, high = (v for v in ax.dataLim.intervaly)
        decades = math.log10(high / low) if low > 0 else 99
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2
                                              else (1.0,), numticks=8))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
                                                             7.0, 8.0, 9.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    else:
        plain = ScalarFormatter(useOffset=False)
        plain.set_scientific(False)
        ax.yaxis.set_major_formatter(plain)


def _log_worth_it(values) -> bool:
    """A log axis helps when the values span more than a factor of ~20 (all positive)."""
    values = [v for v in values if v == v]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


def loss_curve(history: list, metric: str, train_loss: str, best_epoch, title: str,
               path) -> None:
    """Two panels sharing the epoch axis: training loss (top) and validation ``metric``
    (bottom), each on its own scale (logarithmic where the values span more than a factor
    of 20), with plain tick labels and the best validation epoch marked. ``train_loss``
    says what the training loss is."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    losses = [h["train_loss"] for h in history]
    val = [h[f"val_{metric}"] for h in history]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5.5))
    top.plot(epochs, losses, marker="o", markersize=3, color="tab:blue")
    top.set_ylabel("train loss")
    top.set_title(f"train loss: {train_loss}", fontsize=9, loc="left")
    bottom.plot(epochs, val, marker="o", markersize=3, color="tab:orange",
                label=f"validation {metric}")
    if best_epoch is not None:
        best = val[epochs.index(best_epoch)]
        bottom.plot([best_epoch], [best], marker="*", markersize=14, color="tab:red",
                    linestyle="none", label=f"best epoch {best_epoch} ({metric} {best:.4g})")
        for ax in (top, bottom):
            ax.axvline(best_epoch, color="tab:red", linewidth=0.8, linestyle=":")
        bottom.legend(fontsize=8, loc="best")
    bottom.set_ylabel(f"validation {metric}")
    bottom.set_title(f"validation {metric} (lower is better)", fontsize=9, loc="left")
    bottom.set_xlabel("epoch")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, values in ((top, losses), (bottom, val)):
        if _log_worth_it(values):
            ax.set_yscale("log")
        _plain_ticks(ax)
        ax.grid(True, which="major", alpha=0.3)
        ax.margins(y=0.12)
    if len(epochs) == 1:
        bottom.set_xlim(epochs[0] - 1, epochs[0] + 1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def forecast_vs_actual(labels, actual, forecasts: dict, scores: dict, title: str,
                       unit: str, path, time_label: str = "time", band=None,
                       by_step: dict | None = None) -> None:
    """Forecasts over the test span against the actual values, on the time axis of
    ``labels`` (named ``time_label``), the values in ``unit``; each model's test score
    (``scores[name]``, RMSE in ``unit``) in the legend, which sits below the axes so that
    it covers no data. ``band``: (lower (N,), upper (N,), label), shaded behind the
    LSTM's forecasts. ``by_step``: {name: [RMSE of step 1..H]}, drawn beneath in a second
    panel against the step ahead."""
    plt = _pyplot()
    if by_step:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 8.5),
                                      gridspec_kw={"height_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(9, 5))
    x = range(len(actual))
    ax.plot(x, actual, color="black", linewidth=1.5, label="actual")
    colors = {}
    for name, values in forecasts.items():
        line, = ax.plot(x, values, linewidth=1.6 if name == "lstm" else 0.9,
                        label=f"{name} (test RMSE{' 1 step ahead' if by_step else ''} "
                              f"{scores[name]:.4g})")
        colors[name] = line.get_color()
    handles = list(ax.get_lines())
    if band is not None:
        lower, upper, label = band
        handles.append(ax.fill_between(x, lower, upper, color=colors.get("lstm"), alpha=0.2,
                                       linewidth=0, label=label))
    ticks = list(range(0, len(labels), max(1, len(labels) // 8)))
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[i] for i in ticks], rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(actual) - 0.5)
    ax.set_xlabel(time_label)
    ax.set_ylabel(unit)
    _plain_ticks(ax)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if by_step:
        for name, rmses in by_step.items():
            steps = np.arange(1, len(rmses) + 1)
            ax2.plot(steps, rmses, marker="o", markersize=3, color=colors.get(name),
                     linewidth=1.6 if name == "lstm" else 0.9, label=name)
        from matplotlib.ticker import MaxNLocator
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_xlabel("steps ahead")
        ax2.set_ylabel(f"test RMSE ({unit})")
        ax2.set_title("test RMSE by step ahead, every model on the same forecast origins")
        ax2.grid(True, alpha=0.3)
        _plain_ticks(ax2)
        ax2.legend(fontsize=8, frameon=False)
    labels_ = [h.get_label() for h in handles]
    rows = math.ceil(len(handles) / min(3, len(handles)))
    if by_step:          # the forecasts' legend right beneath their panel, not the figure's
        ax.legend(handles, labels_, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=min(3, len(handles)), fontsize=8, frameon=False)
        fig.tight_layout(h_pad=1.0)
    else:
        fig.legend(handles, labels_, loc="lower center", ncol=min(3, len(handles)),
                   fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.02 + 0.045 * rows, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gate_heatmaps(panels: dict, shown, shown_label: str, marked, title: str, path) -> None:
    """One heatmap per entry of ``panels`` (name -> (T, H) values over time), units down
    and time across, and beneath them what the sequence held at each step: a line of
    ``shown`` values, or its characters as tick labels (``shown`` a list of str); steps in
    ``marked`` are drawn as vertical lines through every panel."""
    plt = _pyplot()
    T = len(shown)
    text = bool(shown) and isinstance(shown[0], str)
    heights = [3] * len(panels) + [1.2]
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(min(16, 6 + T * 0.06), 2.1 *
                                                          len(panels) + 1.6),
                             sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, (name, values) in zip(axes, panels.items()):
        gate = not name.startswith("cell")
        limit = 1.0 if gate else max(1e-9, float(np.abs(values).max()))
        image = ax.imshow(values.T, aspect="auto", interpolation="nearest", origin="lower",
                          cmap="viridis" if gate else "RdBu_r", vmin=0.0 if gate else -limit,
                          vmax=limit, extent=(-0.5, T - 0.5, -0.5, values.shape[1] - 0.5))
        ax.set_ylabel(f"{name}\nunit", fontsize=9)
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
        for t in marked:
            ax.axvline(t, color="white" if gate else "black", linewidth=0.8, linestyle=":")
    bottom = axes[-1]
    if text:                 # one character per step, spaces as '·', controls escaped
        for t, c in enumerate(shown):
            shown_c = "·" if c == " " else (repr(c)[1:-1] if not c.isprintable() else c)
            bottom.text(t, 0.5, shown_c, ha="center", va="center", family="monospace",
                        fontsize=9 if T <= 80 else 7)
        bottom.set_ylim(0, 1)
        bottom.set_yticks([])
        bottom.set_ylabel(shown_label, fontsize=9)
    else:
        bottom.plot(range(T), shown, color="black", linewidth=1.2)
        for t in marked:
            bottom.plot([t], [shown[t]], marker="o", color="tab:red")
        bottom.set_ylabel(shown_label, fontsize=9)
        bottom.grid(True, alpha=0.3)
    bottom.set_xlabel("time step t")
    spacer = fig.colorbar(axes[0].images[0], ax=bottom, pad=0.01, fraction=0.03)
    spacer.ax.set_visible(False)          # the same width as the heatmaps: steps line up
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gradient_flow(curves: dict, title: str, path) -> None:
    """||dL/dh_t|| (solid) and ||dL/dc_t|| (dashed) against the lag from the loss, one color
    per entry of ``curves`` (label -> {"h": [...], "c": [...]}), on a log axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for (label, c), color in zip(curves.items(), ("tab:blue", "tab:gray", "tab:orange")):
        lags = range(len(c["h"]))
        ax.semilogy(lags, c["h"], color=color, label=f"‖∂L/∂h_t‖, {label}")
        if "c" in c:
            ax.semilogy(lags, c["c"], color=color, linestyle="--",
                        label=f"‖∂L/∂c_t‖, {label}")
    ax.set_xlabel("lag from the loss, T-1-t (steps)")
    ax.set_ylabel("mean over the sequences")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
