"""A plain (Elman) RNN beside the LSTM: torch.nn.RNN's interface, backpropagation through
time by hand, in generic ``xp`` (so it runs on every backend).

It exists to compare with the LSTM (its gradients vanish over long lags where the LSTM's
cell carries them: ``lstm_xp.inspect``, ``scripts/gradient_flow.py``) and for teaching, so it
is kept small: no lengths, no projection, no cell variants.

One direction of one layer (T steps, batch B, input I, hidden H), with phi = tanh or relu:

    a_t = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh          h_t = phi(a_t)

and its backward, with dh the gradient reaching h_t through the next step:

    g_t  = dy_t + dh                    (dL/dh_t, total)
    da_t = g_t * phi'(a_t)              phi' = 1 - h_t^2 (tanh), [h_t > 0] (relu)
    dh  <- da_t W_hh                    (to h_prev)
    dW_ih = sum_t da_t^T x_t   dW_hh = sum_t da_t^T h_prev   db_ih = db_hh = sum_t da_t
    dx_t = da_t W_ih
"""

from __future__ import annotations

import math
import warnings

from backends import parameter_generator

from .arrays import (as_input, check_finite, check_shape, flag, positive_int, probability,
                     rows_contiguous)
from .module import Module
from .sequences import SequenceLayout

NONLINEARITIES = ("tanh", "relu")


def rnn_param_names(layer: int, direction: int) -> dict:
    """torch.nn.RNN's names for one layer-direction, by w_ih, w_hh, b_ih, b_hh."""
    suffix = f"l{layer}" + ("_reverse" if direction else "")
    return {"w_ih": f"weight_ih_{suffix}", "w_hh": f"weight_hh_{suffix}",
            "b_ih": f"bias_ih_{suffix}", "b_hh": f"bias_hh_{suffix}"}


def rnn_direction_forward(backend, x, w_ih, w_hh, b_ih, b_hh, h0, reverse: bool, relu: bool):
    """h (T+1, B, H): the states of one direction in time order, h0 in slot 0 (forward) or
    T (reverse), as lstm_xp.bptt lays them out. x (T, B, I) C-contiguous; h0 (B, H)."""
    xp = backend.xp
    T, B, I = x.shape
    H = w_hh.shape[0]
    a = xp.reshape(xp.matmul(xp.reshape(x, (T * B, I)), w_ih.T), (T, B, H))
    if b_ih is not None:
        a += b_ih + b_hh
    h = backend.empty((T + 1, B, H), x.dtype)
    prev, cur = (1, 0) if reverse else (0, 1)
    h[T if reverse else 0, ...] = h0
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        backend.matmul_acc(h[t + prev, ...], w_hh.T, out=a[t, ...])
        h[t + cur, ...] = xp.maximum(a[t, ...], 0.0) if relu else xp.tanh(a[t, ...])
    return h


def rnn_direction_backward(backend, x, h, w_ih, w_hh, dy, dh_n, grads, dx, accumulate_dx,
                           reverse: bool, relu: bool, record=None):
    """Backpropagate one direction (equations in the module docstring); adds to ``grads``
    ("w_ih", "w_hh" and, with biases, "b_ih", "b_hh"); writes (or adds) dL/dx into ``dx``;
    returns dL/dh0 (B, H). ``record``, a (T, B, H) array or None, receives g_t = dL/dh_t
    (total) of every step."""
    xp = backend.xp
    T, B, I = x.shape
    H = w_hh.shape[0]
    prev, cur = (1, 0) if reverse else (0, 1)
    dh = backend.zeros((B, H), x.dtype)
    if dh_n is not None:
        dh[...] = dh_n
    da = backend.empty((T, B, H), x.dtype)
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        g = dh if dy is None else dh + dy[t, ...]
        if record is not None:
            record[t, ...] = g
        h_t = h[t + cur, ...]
        da[t, ...] = g * xp.astype(h_t > 0, x.dtype) if relu else g * (1.0 - h_t * h_t)
        backend.matmul_into(da[t, ...], w_hh, out=dh)
    da2 = xp.reshape(da, (T * B, H))
    backend.matmul_acc(da2.T, xp.reshape(x, (T * B, I)), out=grads["w_ih"])
    h_prev = h[prev:prev + T, ...]
    backend.matmul_acc(da2.T, xp.reshape(h_prev, (T * B, H)), out=grads["w_hh"])
    if "b_ih" in grads:
        db = xp.sum(da2, axis=0)
        grads["b_ih"] += db
        grads["b_hh"] += db
    dx2 = xp.reshape(dx, (T * B, I))
    (backend.matmul_acc if accumulate_dx else backend.matmul_into)(da2, w_ih, out=dx2)
    return dh


class RNN(SequenceLayout, Module):
    """Elman RNN, h_t = phi(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), as torch.nn.RNN.

    Args (torch.nn.RNN's positional order; the rest keyword-only):
        input_size: I.  hidden_size: H.  num_layers: L.
        nonlinearity: "tanh" or "relu" (phi).
        bias: learn b_ih and b_hh.  batch_first: (B, T, features) in and out.
        dropout: p in [0, 1]: inverted dropout on each layer's output but the last, in
            training mode.  bidirectional: D = 2 directions per layer.
        dtype, device, seed: as for :class:`lstm_xp.LSTM`.

    Parameters: ``weight_ih_l{k}{_reverse}`` (H, I_k), ``weight_hh_l{k}{_reverse}`` (H, H),
    ``bias_ih_l{k}{_reverse}``, ``bias_hh_l{k}{_reverse}`` (H,), all ~ U(-1/sqrt(H),
    1/sqrt(H)) as torch.

    Shapes: x (T, B, I) [(B, T, I) batch_first, (T, I) unbatched]; h0 and h_n (L*D, B, H)
    [(L*D, H) unbatched]; y (T, B, D*H), the forward direction first.

    Example::

        rnn = RNN(2, 32, nonlinearity="tanh", seed=0)
        y, h_n = rnn.forward(x)                    # x (T, B, 2)
        dx, dh0 = rnn.backward(dy)                 # adds to rnn.grads
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype="float32",
                 device="cpu", seed=None):
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.bias = flag("bias", bias)
        self.batch_first = flag("batch_first", batch_first)
        self.dropout = probability("dropout", dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout={self.dropout} acts between stacked layers, so with "
                          "num_layers=1 it does nothing (as in torch.nn.RNN)", UserWarning,
                          stacklevel=2)
        self.bidirectional = flag("bidirectional", bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        super().__init__(device, dtype)
        rng = parameter_generator(seed)
        bound, H = 1.0 / math.sqrt(self.hidden_size), self.hidden_size
        host = {}
        for k in range(self.num_layers):
            fan_in = self.input_size if k == 0 else self.num_directions * H
            for d in range(self.num_directions):
                names = rnn_param_names(k, d)
                host[names["w_ih"]] = rng.uniform(-bound, bound, (H, fan_in))
                host[names["w_hh"]] = rng.uniform(-bound, bound, (H, H))
                if self.bias:
                    host[names["b_ih"]] = rng.uniform(-bound, bound, H)
                    host[names["b_hh"]] = rng.uniform(-bound, bound, H)
        self._init_params(host)

    def __repr__(self) -> str:
        return (f"RNN({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"nonlinearity={self.nonlinearity!r}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, "
                f"bidirectional={self.bidirectional}, dtype={self.dtype_name!r}, "
                f"device={self.device!r})")

    output_size = property(lambda self: self.hidden_size)

    def _layer(self, k: int, d: int, store=None) -> dict:
        store = self.params if store is None else store
        return {key: store[name] for key, name in rnn_param_names(k, d).items() if name in store}

    def forward(self, x, h0=None, *, train=None, return_tape: bool = False):
        """x -> (y, h_n); a training-mode call keeps a tape for :meth:`backward`."""
        backend = self.backend
        training = self._training_call(train)
        layer_input, unbatched = self._input_sequence(x)
        T, B = layer_input.shape[0], layer_input.shape[1]
        h0 = self._state_in("h0", h0, B, unbatched, self.hidden_size, "hidden_size")
        check_finite(backend, {"x": layer_input, "h0": h0})
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        h_n = backend.empty((L * D, B, H), self.dtype)
        zeros = backend.zeros((B, H), self.dtype) if h0 is None else None
        relu = self.nonlinearity == "relu"
        layers, masks = [], []
        for k in range(L):
            y = backend.empty((T, B, D * H), self.dtype)
            states = []
            for d in range(D):
                p = self._layer(k, d)
                h = rnn_direction_forward(backend, layer_input, p["w_ih"], p["w_hh"],
                                          p.get("b_ih"), p.get("b_hh"),
                                          zeros if h0 is None else h0[k * D + d, ...],
                                          d == 1, relu)
                y[:, :, d * H:(d + 1) * H] = h[:T, ...] if d == 1 else h[1:, ...]
                h_n[k * D + d, ...] = h[0, ...] if d == 1 else h[T, ...]
                states.append(h)
            mask = None
            if training and self.dropout > 0 and k < L - 1:
                mask = backend.dropout_mask((T, B, D * H), self.dropout, self.dtype)
                y *= mask
            layers.append((layer_input, states))
            masks.append(mask)
            layer_input = y
        out = (self._user_layout(layer_input, unbatched), self._state_out(h_n, unbatched))
        tape = self._keep({"layers": layers, "masks": masks, "unbatched": unbatched}) \
            if training else None
        return out + (tape,) if return_tape else out

    __call__ = forward

    def backward(self, dy=None, dh_n=None, *, tape=None, _record=None):
        """dL/dy (shaped like y, or None) and dL/dh_n (or None) -> (dx, dh0); adds to
        ``grads``; uses up the tape. ``_record`` (lstm_xp.inspect): {(k, d): (T, B, H)
        array} receiving dL/dh_t of every step."""
        backend = self.backend
        kept = self._find_tape(tape)
        layers, masks, unbatched = (kept.data[k] for k in ("layers", "masks", "unbatched"))
        T, B = layers[0][0].shape[0], layers[0][0].shape[1]
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        if dy is not None:
            dy = as_input(backend, dy, "dy", self.dtype, ndims=(2,) if unbatched else (3,))
            shape, axes = self._user_shape(T, B, D * H, unbatched, "num_directions * hidden_size")
            check_shape("dy", dy, shape, axes)
            dy = rows_contiguous(backend, self._time_major(dy, unbatched))
        dh_n = self._state_in("dh_n", dh_n, B, unbatched, H, "hidden_size")
        check_finite(backend, {"dy": dy, "dh_n": dh_n})
        self._consume(kept)
        relu = self.nonlinearity == "relu"
        dh0 = backend.empty((L * D, B, H), self.dtype)
        d_out = dy
        for k in reversed(range(L)):
            if k < L - 1 and masks[k] is not None and d_out is not None:
                d_out = d_out * masks[k]
            x, states = layers[k]
            d_in = backend.empty(tuple(x.shape), self.dtype)
            for d in range(D):
                s = k * D + d
                p = self._layer(k, d)
                dh0[s, ...] = rnn_direction_backward(
                    backend, x, states[d], p["w_ih"], p["w_hh"],
                    None if d_out is None else d_out[:, :, d * H:(d + 1) * H],
                    None if dh_n is None else dh_n[s, ...], self._layer(k, d, self.grads),
                    d_in, d > 0, d == 1, relu,
                    None if _record is None else _record.get((k, d)))
            d_out = d_in
        return self._user_layout(d_out, unbatched), self._state_out(dh0, unbatched)
