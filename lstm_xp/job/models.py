"""Small models built from the layers: a multi-step forecaster and a character model.

A model is a :class:`lstm_xp.module.Container` of named layers (``model.layers``: name ->
layer) with forward/backward: modes, zero_grad, named_parameters and state dicts as a
layer's, names "<layer>.<parameter>", e.g. "lstm.weight_ih_l0", "head.bias".
"""

from __future__ import annotations

import numpy as np

from ..layers import Linear, MonotoneQuantiles
from ..lstm import LSTM
from ..module import Container


def _child_seeds(seed, n: int):
    if seed is None:
        return [None] * n
    return [int(s) for s in np.random.default_rng(seed).integers(0, 2**31 - 1, size=n)]


class Model(Container):
    """Named layers; parameters, modes and devices handled together."""


class SeriesForecaster(Model):
    """Windows of past values -> the next H values (a direct multi-output head), as points
    or as Q quantiles each.

    An LSTM reads the window; a Linear head maps the top layer's final hidden state to H
    outputs (or H x Q scores that MonotoneQuantiles turns into quantiles that cannot cross):
        h_n = LSTM(x)[1][0]      z = head(h_n[-1])      out = z (B, H)
                                                        out = monotone(z as (B, H, Q))

    Shapes: x (B, W, input_size) -> out (B, H), or (B, H, Q) with ``quantiles``. ``cell``:
    the LSTM's cell-variant options (peephole, layer_norm, zoneout, recurrent_dropout,
    weight_drop).
    """

    def __init__(self, hidden_size=32, num_layers=1, dtype="float32", device="cpu", seed=None,
                 dropout=0.0, input_size=1, horizon=1, quantiles=None, **cell):
        s_lstm, s_head = _child_seeds(seed, 2)
        self.horizon = horizon
        self.quantiles = None if quantiles is None else list(quantiles)
        self.n_out = 1 if quantiles is None else len(quantiles)
        self.lstm = LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                         dtype=dtype, device=device, seed=s_lstm, forget_bias=1.0,
                         dropout=dropout, **cell)
        self.head = Linear(hidden_size, horizon * self.n_out, dtype=dtype, device=device,
                           seed=s_head)
        self.monotone = None if quantiles is None else MonotoneQuantiles(device=device)
        self.layers = {"lstm": self.lstm, "head": self.head}

    def to(self, device):
        super().to(device)
        if self.monotone is not None:
            self.monotone.to(device)
        return self

    def train(self, mode: bool = True):
        """Modes reach the quantile layer too (it keeps a tape only in training mode)."""
        super().train(mode)
        if self.monotone is not None:
            self.monotone.train(mode)
        return self

    def forward(self, x, *, train=None):
        _, (h_n, _) = self.lstm.forward(x, train=train)
        z = self.head.forward(h_n[-1, ...], train=train)
        if self.monotone is None:
            return z
        xp = self.backend.xp
        scores = xp.reshape(z, (z.shape[0], self.horizon, self.n_out))
        return self.monotone.forward(scores, train=train)

    def backward(self, dout) -> None:
        """dout (B, H) (or (B, H, Q)) = dL/dout; adds to every layer's grads."""
        if self.monotone is not None:
            dz = self.monotone.backward(dout)
            dout = self.backend.xp.reshape(dz, (dz.shape[0], self.horizon * self.n_out))
        d_top = self.head.backward(dout)
        lstm = self.lstm
        dh_n = lstm.backend.zeros((lstm.num_layers, d_top.shape[0], lstm.hidden_size),
                                  lstm.dtype)
        dh_n[-1, ...] = d_top
        lstm.backward(None, (dh_n, None))

    inspected_loss = "MSE of the first step's forecast (the median's, for quantiles)"

    def lstm_gradients(self, x, target):
        """For L = mean((f - target)^2) over a batch, f the first step ahead's point
        forecast (the median quantile with ``quantiles``; target (B,) in the model's
        units): (dy, dstate) of the LSTM, what lstm_xp.inspect.trace takes. Host arrays.

        With quantiles, f = q_m = z_1 + softplus(z_2) + ... + softplus(z_m) (m the
        median's place), so df/dz_1 = 1, df/dz_j = sigmoid(z_j) for 1 < j <= m."""
        lstm, backend = self.lstm, self.lstm.backend
        _, (h_n, _) = lstm.forward(x, train=False)
        top = h_n[-1, ...]
        z = backend.to_numpy(self.head.forward(top, train=False)).astype(np.float64)
        weight = backend.to_numpy(self.head.params["weight"]).astype(np.float64)
        if self.monotone is None:
            f, df_dz = z[:, 0], np.zeros_like(z)
            df_dz[:, 0] = 1.0
        else:
            m = self.quantiles.index(0.5)
            scores = z[:, :self.n_out]                       # step 1's Q scores
            f = scores[:, 0] + np.sum(np.logaddexp(0.0, scores[:, 1:m + 1]), axis=1)
            df_dz = np.zeros_like(z)
            df_dz[:, 0] = 1.0
            df_dz[:, 1:m + 1] = 0.5 + 0.5 * np.tanh(0.5 * scores[:, 1:m + 1])   # sigmoid
        df = 2.0 * (f - target) / len(target)
        dh_n = np.zeros((lstm.num_layers, len(target), lstm.hidden_size))
        dh_n[-1] = (df[:, None] * df_dz) @ weight
        return None, (dh_n.astype(lstm.dtype_name), None)


class CharModel(Model):
    """Characters -> next-character logits at every step.

        y = LSTM(one_hot(chars))        logits = head(y)

    Shapes: x (B, T, V) one-hot -> logits (B, T, V); ``state`` (h, c) each (L, B, H) carries
    context across consecutive chunks of a stream (inference and sampling). ``cell``: the
    LSTM's cell-variant options (peephole, layer_norm, zoneout, recurrent_dropout, weight_drop).
    """

    def __init__(self, vocab_size, hidden_size=128, num_layers=1, dtype="float32", device="cpu",
                 seed=None, dropout=0.0, **cell):
        s_lstm, s_head = _child_seeds(seed, 2)
        self.lstm = LSTM(vocab_size, hidden_size, num_layers=num_layers, batch_first=True,
                         dtype=dtype, device=device, seed=s_lstm, forget_bias=1.0,
                         dropout=dropout, **cell)
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, device=device, seed=s_head)
        self.layers = {"lstm": self.lstm, "head": self.head}

    def forward(self, x, state=None, *, train=None):
        y, state = self.lstm.forward(x, state, train=train)
        return self.head.forward(y, train=train), state

    def backward(self, dlogits) -> None:
        self.lstm.backward(self.head.backward(dlogits))

    inspected_loss = "cross-entropy of the character after the window"

    def lstm_gradients(self, x, target):
        """For L = the mean cross-entropy of the *last* step's prediction (target (B,)
        character ids), so that each step's lag from the loss is defined: (dy, dstate) of
        the LSTM, what lstm_xp.inspect.trace takes. Host arrays."""
        lstm = self.lstm
        logits, _ = self.forward(x, train=False)
        last = lstm.backend.to_numpy(logits)[:, -1, :].astype(np.float64)
        p = np.exp(last - last.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(target)), target] -= 1.0
        dy = np.zeros(tuple(x.shape[:2]) + (lstm.hidden_size,))
        dy[:, -1, :] = (p / len(target)) @ lstm.backend.to_numpy(self.head.params["weight"])
        return dy.astype(lstm.dtype_name), None
