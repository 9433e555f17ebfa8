"""Simple forecasters and language models the LSTM must beat, scored on the same points.

Series (H steps ahead, from the same windows the LSTM sees; forecasts (N, H)):
    persistence       y_hat_{t+k} = the last value of the window, for every k
    seasonal_naive    y_hat_{t+k} = the value a whole number of seasons (m steps) before
                      t+k, the latest one the window's end has seen
    linear_ar         y_hat_{t+k} = a_k . window + b_k: least squares on the training
                      windows, one fit per step ahead (direct)
    linear_arx        (runs with covariates or time features) y_hat_{t+k} = last value +
                      a linear function of the window's changes from its last value and of
                      the other features' windows: the LSTM's inputs, encoded as its are,
                      direct. W + W F inputs can outnumber the training examples, where
                      least squares fits noise, so it is ridge regression with its penalty
                      chosen on the validation examples; a strong penalty falls back to
                      persistence
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


class RidgeARX:
    """Direct linear forecasts from many inputs: ridge regression, one fit per step ahead.

        z = (x - mean) / std         (mean, std of the training inputs; std 0 -> 1)
        beta = argmin |Z beta - (Y - Y_mean)|^2 / N + lam |beta|^2     y_hat = Y_mean + z beta

    lam is the one of ``PENALTIES`` with the lowest RMSE on validation examples (all steps
    ahead); the intercept is not penalised.
    """

    PENALTIES = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)

    def fit(self, inputs, targets, val_inputs, val_targets) -> RidgeARX:
        """inputs (N, P), targets (N, H); the validation examples alike."""
        self.mean = inputs.mean(axis=0)
        std = inputs.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        z = (inputs - self.mean) / self.std
        self.y_mean = targets.mean(axis=0)
        gram, cross = z.T @ z / len(z), z.T @ (targets - self.y_mean) / len(z)
        scores = []
        for lam in self.PENALTIES:
            self.coef = np.linalg.solve(gram + lam * np.eye(len(gram)), cross)
            scores.append((rmse(self.predict(val_inputs), val_targets), lam, self.coef))
        _, self.penalty, self.coef = min(scores, key=lambda s: s[0])
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """(N, P) -> (N, H)."""
        return self.y_mean + ((inputs - self.mean) / self.std) @ self.coef


def _arx_inputs(windows) -> np.ndarray:
    """A ``data.Windows``' inputs for linear_arx: the window's changes from its last value
    and the other features, flattened: (N, W + W F)."""
    return np.hstack([windows.inputs - windows.inputs[:, -1:],
                      windows.extra.reshape(len(windows), -1)])


def _changes(windows) -> np.ndarray:
    """(N, H) targets as changes from the window's last value."""
    return windows.targets - windows.inputs[:, -1:]


def series_forecasts(values, train, val, test, period) -> dict:
    """Each series baseline's (N, H) forecasts of the test targets; ``train``/``val``/
    ``test`` are ``data.Windows`` (linear_ar, and linear_arx when the windows have other
    features, are fitted on ``train``; linear_arx's penalty is chosen on ``val``)."""
    horizon = test.targets.shape[1]
    forecasts = {"persistence": persistence(test.inputs, horizon)}
    if period is not None:
        forecasts["seasonal_naive"] = seasonal_naive(values, test.index, period, horizon)
    forecasts["linear_ar"] = LinearAR().fit(train.inputs, train.targets).predict(test.inputs)
    if test.extra.shape[2]:
        arx = RidgeARX().fit(_arx_inputs(train), _changes(train), _arx_inputs(val),
                             _changes(val))
        forecasts["linear_arx"] = test.inputs[:, -1:] + arx.predict(_arx_inputs(test))
    return forecasts


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
