"""Weights from other libraries into lstm-xp's parameter names.

    params = from_keras(kernel, recurrent_kernel, bias)            # one Keras LSTM layer
    lstm.load_state_dict(params)
    stack = {**from_keras(k0, r0, b0, layer=0), **from_keras(k1, r1, b1, layer=1)}

Keras' LSTM cell (``keras.layers.LSTM``, default ``activation="tanh"``,
``recurrent_activation="sigmoid"``) keeps

    kernel            (I, 4H)    x_t @ kernel
    recurrent_kernel  (H, 4H)    h_{t-1} @ recurrent_kernel
    bias              (4H,)      one bias
with the four gates in the order i, f, c, o along the last axis -- the order i, f, g, o of
PyTorch and lstm-xp (Keras' c is the candidate g). So weight_ih = kernel^T,
weight_hh = recurrent_kernel^T, bias_ih = bias and bias_hh = 0 (the two biases only ever
appear summed). A Keras layer with ``go_backwards=True`` is lstm-xp's reverse direction
(``reverse=True``); its final output is that direction's h_n.
"""

from __future__ import annotations

import numpy as np

from .arrays import host_array
from .lstm import param_names


def _matrix(name: str, value) -> np.ndarray:
    host = host_array(value)
    if host is None or host.ndim != 2 or host.shape[1] % 4:
        shape = getattr(value, "shape", None)
        raise ValueError(f"{name} must be a 2-D array whose last axis holds the four gates "
                         f"(a multiple of 4 columns), got shape {shape}")
    return np.asarray(host, dtype=np.float64)


def from_keras(kernel, recurrent_kernel, bias=None, *, layer: int = 0,
               reverse: bool = False) -> dict:
    """lstm-xp parameters (name -> float64 host array) of one Keras LSTM layer.

    Args:
        kernel: (I, 4H) Keras' ``kernel``.
        recurrent_kernel: (H, 4H) Keras' ``recurrent_kernel``.
        bias: (4H,) Keras' ``bias``, or None for a layer built with ``use_bias=False`` (then
            the result has no bias entries: load it into an ``LSTM(..., bias=False)``).
        layer: which layer of an lstm-xp stack these are (names get ``_l{layer}``).
        reverse: the reverse direction of a bidirectional layer (``go_backwards`` in Keras).

    Raises:
        ValueError: shapes that do not fit together.
    """
    w = _matrix("kernel", kernel)
    u = _matrix("recurrent_kernel", recurrent_kernel)
    H = w.shape[1] // 4
    if u.shape != (H, 4 * H):
        raise ValueError(f"recurrent_kernel must have shape (H, 4H) = ({H}, {4 * H}) to match "
                         f"kernel {w.shape}, got {u.shape}")
    names = param_names(layer, 1 if reverse else 0)
    params = {names["w_ih"]: w.T.copy(), names["w_hh"]: u.T.copy()}
    if bias is not None:
        b = host_array(bias)
        if b is None or b.shape != (4 * H,):
            raise ValueError(f"bias must have shape (4H,) = ({4 * H},), got "
                             f"{getattr(bias, 'shape', None)}")
        params[names["b_ih"]] = np.asarray(b, dtype=np.float64).copy()
        params[names["b_hh"]] = np.zeros(4 * H)
    return params
