"""Simple forecasters and language models the LSTM must beat, scored on the same points.

Series (one step ahead, from the same windows the LSTM sees):
    persistence       y_hat = the last value of the window
    seasonal_naive    y_hat = the value one season (m steps) before the target
    linear_ar         y_hat = a . window + b, least squares on the training windows
Text (bits per character on the same predicted positions):
    unigram           P(c) from training character counts, add-one smoothed
    bigram            P(c | previous c) from training pair counts, add-one smoothed
"""

from __future__ import annotations

import numpy as np


def rmse(pred, target) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


def persistence(inputs: np.ndarray) -> np.ndarray:
    """(N, W) windows -> (N,) forecasts: the last value."""
    return inputs[:, -1].copy()


def seasonal_naive(values: np.ndarray, target_index: np.ndarray, period: int) -> np.ndarray:
    """(N,) forecasts values[t - period] for targets at positions t (all t >= period)."""
    if np.any(target_index < period):
        raise ValueError(f"seasonal_naive needs {period} past values before every target")
    return values[target_index - period].copy()


class LinearAR:
    """Least-squares linear autoregression on a window: y_hat = a . window + b."""

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> LinearAR:
        design = np.hstack([inputs, np.ones((len(inputs), 1))])
        self.coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self.coef[:-1] + self.coef[-1]


def series_forecasts(values, train, test, period) -> dict:
    """Each series baseline's (N,) forecasts of the test targets; ``train``/``test`` are
    ``data.Windows`` (linear_ar is fitted on ``train``)."""
    forecasts = {"persistence": persistence(test.inputs)}
    if period is not None:
        forecasts["seasonal_naive"] = seasonal_naive(values, test.index, period)
    forecasts["linear_ar"] = LinearAR().fit(train.inputs, train.targets).predict(test.inputs)
    return forecasts


def series_baselines(values, train, test, period) -> dict:
    """Test RMSE of each series baseline (see :func:`series_forecasts`)."""
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
