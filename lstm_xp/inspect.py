"""Look inside a recurrent layer: its gates and states at every step, and the exact
gradients dL/dh_t and dL/dc_t that backpropagation through time computes at every step.

torch's fused ``nn.LSTM`` exposes neither; with it one unrolls ``LSTMCell`` by hand and
calls ``retain_grad`` on every state. Here backward is written out, so it can record them::

    tr = trace(lstm, x, dy=dy)            # lstm: LSTM or RNN; x in the layer's layout
    tr.gates[0][0]                        # (T, B, 4H): i, f, g, o of layer 0, forward
    tr.dc[0][0]                           # (T, B, H): dL/dc_t at every step

Conventions:
- Everything is time-major, (T, B, features), whatever the layer's ``batch_first``, and
  indexed by time t (a reverse direction's step t is its (T-1-t)-th visit).
- ``gates`` are activated, in torch's order i, f, g, o; ``c`` and ``h`` are the state after
  step t (``h`` projected with proj_size).
- The loss is L = sum(dy * y) + sum(dh_n * h_n) + sum(dc_n * c_n), so ``dh``/``dc`` are
  what autograd gives as ``h_t.grad``/``c_t.grad`` in an unrolled loop.
- Padded steps (``lengths``): ``gates`` are zero there (no step happened); ``h``, ``c``,
  ``dh`` and ``dc`` hold the values carried through them (the state is carried unchanged,
  and so are its gradients).
- The trace runs the layer as a training step would, but without dropout between layers
  (a mask would make the trace one random draw); it leaves the layer as it was: no
  gradient accumulated, no tape kept, no random draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arrays import to_numpy
from .lstm import LSTM
from .rnn import RNN


@dataclass
class Trace:
    """Per layer k and direction d (``[k][d]``), NumPy arrays over time (see the module
    docstring). ``gates`` and ``c`` are None for an RNN; ``dh`` and ``dc`` are None when
    neither dy nor dstate was given."""
    gates: list | None
    c: list | None
    h: list
    dh: list | None
    dc: list | None


def trace(layer, x, state=None, lengths=None, dy=None, dstate=None) -> Trace:
    """Gates, states and per-step gradients of ``layer`` (an LSTM or RNN) on ``x``.

    Args:
        layer: :class:`lstm_xp.LSTM` (plain cell, with or without proj_size) or
            :class:`lstm_xp.RNN`.
        x, state, lengths: as for ``layer.forward`` (an RNN's state is h0; RNN takes no
            lengths).
        dy, dstate: as for ``layer.backward`` (an RNN's dstate is dh_n); give either or
            both for ``dh``/``dc``.

    Returns:
        A :class:`Trace`.
    """
    if not isinstance(layer, (LSTM, RNN)):
        raise TypeError(f"trace takes an lstm_xp.LSTM or lstm_xp.RNN, got {type(layer).__name__}")
    is_lstm = isinstance(layer, LSTM)
    if is_lstm and not layer.cell.plain:
        raise NotImplementedError(f"trace covers the plain LSTM cell, not the cell variants "
                                  f"({', '.join(layer.cell.active())})")
    if not is_lstm and lengths is not None:
        raise TypeError("lengths: lstm_xp.RNN takes no lengths")
    saved_grads = {name: layer.backend.asarray(g, copy=True) for name, g in layer.grads.items()}
    last_mode = layer._last_forward_training
    dropout, layer.dropout = layer.dropout, 0.0
    try:
        if is_lstm:
            _, _, tape = layer.forward(x, state, lengths=lengths, train=True, return_tape=True)
        else:
            _, _, tape = layer.forward(x, state, train=True, return_tape=True)
    finally:
        layer.dropout = dropout
    try:
        gates, c, h = _states(layer, tape, is_lstm)
        if dy is None and dstate is None:
            return Trace(gates, c, h, None, None)
        backend, L, D = layer.backend, layer.num_layers, layer.num_directions
        T, B = h[0][0].shape[0], h[0][0].shape[1]
        record = {(k, d): (backend.zeros((T, B, layer.output_size), layer.dtype),
                           backend.zeros((T, B, layer.hidden_size), layer.dtype))
                  for k in range(L) for d in range(D)}
        if is_lstm:
            layer.backward(dy, dstate, tape=tape, _record=record)
        else:
            layer.backward(dy, dstate, tape=tape, _record={kd: r[0] for kd, r in record.items()})
        dh = [[to_numpy(record[k, d][0]) for d in range(D)] for k in range(L)]
        dc = [[to_numpy(record[k, d][1]) for d in range(D)] for k in range(L)] if is_lstm \
            else None
        return Trace(gates, c, h, dh, dc)
    finally:
        if tape in layer._tapes:                # not backpropagated: dropped, not kept
            layer._take(tape)
        for name, g in layer.grads.items():
            g[...] = saved_grads[name]
        layer._last_forward_training = last_mode


def _states(layer, tape, is_lstm):
    """(gates, c, h) per layer and direction, as NumPy arrays (T, B, .), from a tape."""
    L, D = layer.num_layers, layer.num_directions
    if not is_lstm:
        layers = tape.data["layers"]
        h = []
        for k in range(L):
            states = layers[k][1]
            T = states[0].shape[0] - 1
            h.append([to_numpy(states[d][:T] if d == 1 else states[d][1:]) for d in range(D)])
        return None, None, h
    tapes = tape.data["tapes"]
    gates, c, h = [], [], []
    for k in range(L):
        gates.append([]), c.append([]), h.append([])
        for d in range(D):
            t = tapes[k][d]
            T = t.x.shape[0]
            _, cur = t.slot_offsets()
            acts = to_numpy(t.gates).copy()
            if t.hold is not None:                  # no step happened: zeros
                acts[to_numpy(t.hold)[..., 0]] = 0.0
            gates[k].append(acts)
            c[k].append(to_numpy(t.c[cur:cur + T]).copy())
            h[k].append(to_numpy(t.h[cur:cur + T]).copy())
    return gates, c, h
