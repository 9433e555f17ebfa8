"""Scoring H-step forecasts: per step ahead, per forecast origin, and their intervals.

Everything here is host-side NumPy on forecasts already in the series' units:
point forecasts (N, H), quantile forecasts (N, H, Q), targets (N, H), N forecast origins.

    errors_by_step      RMSE, MAE and MASE of each step ahead k = 1..H
    mase_scale          the in-sample seasonal-naive MAE that MASE divides by
    interval_coverage   the share of targets inside each central band of the quantiles
    backtest_origins    K origins spread evenly over the test span
    paired_verdict      beats / ties / is beaten by, from the same origins' scores

MASE (Hyndman & Koehler, 2006): MAE / mean |y_t - y_{t-m}| over the training part, m the
seasonal period (1 where there is none: the naive forecast's in-sample error). A MASE below
1 beats what the seasonal-naive forecast did, one step ahead, on the training data.
"""

from __future__ import annotations

import math

import numpy as np


def mase_scale(train_values: np.ndarray, period: int | None) -> dict:
    """{"value": mean |y_t - y_{t-m}| over the training part, "period": m, "meaning"}: m =
    ``period``, or 1 without one, or when the training part holds no full season (said in
    "note"). "value" is None when it is 0 (a constant training part): MASE is then
    undefined, and reported as None."""
    train_values = np.asarray(train_values, dtype=np.float64)
    m, note = period or 1, None
    if m >= len(train_values):
        note = (f"the period {m} is not shorter than the {len(train_values)} training "
                f"values: scaled by the one-step naive error instead")
        m = 1
    scale = float(np.mean(np.abs(train_values[m:] - train_values[:-m])))
    out = {"value": scale if scale > 0 else None, "period": m,
           "meaning": "mean |y_t - y_{t-m}| over the training part"}
    if note:
        out["note"] = note
    return out


def _mase(mae, scale):
    if scale is None:
        return None if np.ndim(mae) == 0 else [None] * len(mae)
    return (np.asarray(mae) / scale).tolist()


def errors_by_step(forecasts: np.ndarray, targets: np.ndarray, scale: float | None) -> dict:
    """{"rmse": [H], "mae": [H], "mase": [H]}: each step ahead's scores over the N
    origins (forecasts and targets (N, H)); ``scale`` from :func:`mase_scale`."""
    err = np.asarray(forecasts, dtype=np.float64) - targets
    mae = np.mean(np.abs(err), axis=0)
    return {"rmse": np.sqrt(np.mean(err ** 2, axis=0)).tolist(), "mae": mae.tolist(),
            "mase": _mase(mae, scale)}


def overall_errors(forecasts: np.ndarray, targets: np.ndarray, scale: float | None) -> dict:
    """{"rmse", "mae", "mase"} over every origin and step ahead."""
    err = np.asarray(forecasts, dtype=np.float64) - targets
    mae = float(np.mean(np.abs(err)))
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": mae, "mase": _mase(mae, scale)}


def central_bands(levels) -> list:
    """The central bands of quantile levels: the lowest with the highest, the second
    lowest with the second highest, ...: [(i_lo, i_hi), ...] indices into ``levels``."""
    n = len(levels)
    return [(i, n - 1 - i) for i in range(n // 2) if levels[i] < 0.5 < levels[n - 1 - i]]


def band_name(levels, lo: int, hi: int) -> str:
    return f"{levels[lo]:g}-{levels[hi]:g}"


def interval_coverage(quantiles: np.ndarray, targets: np.ndarray, levels) -> dict:
    """{"0.1-0.9": {"nominal": 0.8, "coverage": c, "coverage_by_step": [H]}, ...}: the
    share of targets with q_lo <= y <= q_hi, for each central band of ``levels``
    (quantiles (N, H, Q), targets (N, H))."""
    out = {}
    for lo, hi in central_bands(levels):
        inside = (quantiles[..., lo] <= targets) & (targets <= quantiles[..., hi])
        out[band_name(levels, lo, hi)] = {
            "nominal": round(levels[hi] - levels[lo], 12), "coverage": float(inside.mean()),
            "coverage_by_step": inside.mean(axis=0).tolist()}
    return out


def max_origins(n_origins: int, horizon: int) -> int:
    """The most backtest origins that fit among ``n_origins`` consecutive ones when each
    is at least ``horizon`` after the last, so that no two forecasts share a target."""
    return (n_origins - 1) // horizon + 1


def backtest_origins(n_origins: int, k: int) -> np.ndarray:
    """K indices into the ``n_origins`` test examples, spread evenly from the first to
    the last, rounded half up: consecutive ones are at least (n_origins - 1) // (K - 1)
    apart, so K <= max_origins(n_origins, H) keeps them H apart."""
    if k == 1:
        return np.array([n_origins - 1])
    return np.floor(np.linspace(0, n_origins - 1, k) + 0.5).astype(int)


def per_origin_rmse(forecasts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K,) RMSE of each origin's H-step forecast (forecasts and targets (K, H))."""
    return np.sqrt(np.mean((np.asarray(forecasts, dtype=np.float64) - targets) ** 2, axis=1))


def paired_verdict(lstm: np.ndarray, baseline: np.ndarray, margin: float) -> str:
    """How the LSTM's per-origin RMSEs compare with a baseline's on the same origins:

    "beats" when its mean is lower by more than ``margin`` (relative) *and* the mean
    paired difference d = baseline - lstm exceeds twice its standard error
    (std(d, ddof=1) / sqrt(K)); "beaten by" the same the other way; else "ties". With one
    origin there is no spread, and the margin alone decides. The standard error treats
    the origins as independent, which is why they are kept H steps apart (no shared
    targets); errors of a series are still correlated in time, so read it as a guide."""
    lstm, baseline = np.asarray(lstm, np.float64), np.asarray(baseline, np.float64)
    d = baseline - lstm
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    a, b = float(lstm.mean()), float(baseline.mean())
    if a < b * (1 - margin) and d.mean() > 2 * se:
        return "beats"
    if b < a * (1 - margin) and d.mean() < -2 * se:
        return "beaten by"
    return "ties"
