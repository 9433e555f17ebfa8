"""Simple forecasters and language models the LSTM must beat, scored on the same points.

Series (H steps ahead, from the same windows the LSTM sees; forecasts (N, H)):
    persistence       y_hat_{t+k} = the last value of the window, for every k
    seasonal_naive    y_hat_{t+k} = the value a whole number of seasons (m steps) before
                      t+k, the latest one the window's end has seen
    linear_ar         y_hat_{t+k} = a_k . inputs + b_k: least squares on the training
                      windows, one fit per step ahead (direct); its inputs are the LSTM's
                      (the target's window, and the other features' when there are any)
Text (bits per character on the same predicted positions):
    unigram           P(c) from training character counts, add-one smoothed
    bigram            P(c | previous c) from training pair counts, add-one smoothed
"""

from __future__ import annotations

import numpy as np

TIE_MARGIN = 0.05     # scores within 5 % are a tie: the seed-to-seed spread measured on `seed`


def rmse(pred, target) -> float:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:      # never broadcast (N,) against (N, 1)
        raise ValueError(f"forecasts of shape {pred.shape} scored against targets of shape "
                         f"{target.shape}")
    return float(np.sqrt(np.mean((pred - target) ** 2)))


def persistence(inputs: np.ndarray, horizon: int = 1) -> np.ndarray:
    """(N, W) windows -> (N, H) forecasts: the last value, repeated."""
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def seasonal_naive(values: np.ndarray, target_index: np.ndarray, period: int,
                   horizon: int = 1) -> np.ndarray:
    """(N, H) forecasts of the H values from positions t (``target_index``, (N,)) on:
    y_hat_{t+k} = values[t + k - m (floor(k / m) + 1)], the same point of the season in
    the last season before t (all t >= m)."""
    target_index = np.asarray(target_index)
    if np.any(target_index < period):
        raise ValueError(f"seasonal_naive needs {period} past values before every target")
    k = np.arange(horizon)
    return values[target_index[:, None] + k - period * (k // period + 1)]


class LinearAR:
    """Least-squares linear autoregression, direct: y_hat_k = a_k . x + b_k for each step
    ahead k (one least-squares problem with H right-hand sides)."""

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> LinearAR:
        """inputs (N, P), targets (N, H)."""
        design = np.hstack([inputs, np.ones((len(inputs), 1))])
        self.coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """(N, P) -> (N, H)."""
        return inputs @ self.coef[:-1] + self.coef[-1]


def _ar_inputs(windows) -> np.ndarray:
    """A ``data.Windows``' inputs for linear_ar: the target's window and its other
    features, flattened: (N, W + W F)."""
    return np.hstack([windows.inputs, windows.extra.reshape(len(windows), -1)])


def series_forecasts(values, train, test, period) -> dict:
    """Each series baseline's (N, H) forecasts of the test targets; ``train``/``test`` are
    ``data.Windows`` (linear_ar is fitted on ``train``)."""
    horizon = test.targets.shape[1]
    forecasts = {"persistence": persistence(test.inputs, horizon)}
    if period is not None:
        forecasts["seasonal_naive"] = seasonal_naive(values, test.index, period, horizon)
    forecasts["linear_ar"] = LinearAR().fit(_ar_inputs(train), train.targets).predict(
        _ar_inputs(test))
    return forecasts


def series_baselines(values, train, test, period) -> dict:
    """Test RMSE of each series baseline over every step ahead (see
    :func:`series_forecasts`)."""
    return {name: rmse(pred, test.targets)
            for name, pred in series_forecasts(values, train, test, period).items()}


def unigram_bpc(train_ids: np.ndarray, targets: np.ndarray, vocab_size: int) -> float:
    """Bits per character of add-one-smoothed character frequencies on ``targets``."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[targets])))


def bigram_bpc(train_ids: np.ndarray, contexts: np.ndarray, targets: np.ndarray,
               vocab_size: int) -> float:
    """Bits per character of add-one-smoothed P(next | previous) on (context, target) pairs."""
    counts = np.ones((vocab_size, vocab_size))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    p = counts / counts.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log2(p[contexts, targets])))
