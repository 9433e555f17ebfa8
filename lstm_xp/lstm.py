"""The LSTM layer: multi-layer, optionally bidirectional, with ``torch.nn.LSTM``'s interface.

Each layer k and direction d (d = 0 forward, d = 1 reverse) runs the recurrence

    i_t = sigma(W_ii x_t + b_ii + W_hi h_prev + b_hi)
    f_t = sigma(W_if x_t + b_if + W_hf h_prev + b_hf)
    g_t = tanh (W_ig x_t + b_ig + W_hg h_prev + b_hg)
    o_t = sigma(W_io x_t + b_io + W_ho h_prev + b_ho)
    c_t = f_t * c_prev + i_t * g_t
    h_t = o_t * tanh(c_t)

over its input (the data for k = 0, the concatenated outputs of layer k-1 otherwise);
``lstm_xp.bptt`` holds the time loop and its backward. As in torch.nn.LSTM, ``proj_size``
P > 0 projects each output, h_t = W_hr (o_t * tanh(c_t)) (LSTMP); ``bias=False`` drops
both biases; ``dropout`` p applies inverted dropout to each layer's output but the last, in
training mode. Parameters carry PyTorch's names and shapes (``weight_ih_l0`` (4H, I),
``weight_hh_l0_reverse`` (4H, H) -- (4H, P) with a projection --, ``weight_hr_l0`` (P, H),
...), rows in gate order i, f, g, o, so state dicts move between the two unchanged.
"""

from __future__ import annotations

import math

import numpy as np

import warnings

from backends import parameter_generator

from .arrays import (as_input, check_finite, check_shape, finite_number, flag, positive_int,
                     probability, python_numbers, rows_contiguous, shown,
                     to_numpy)
from .bptt import direction_backward, direction_forward
from .cell_variants import CellOptions, variant_backward, variant_forward
from .module import Module
from .sequences import SequenceLayout

RECURRENT_INITS = ("uniform", "orthogonal")


def param_names(layer: int, direction: int) -> dict:
    """PyTorch's names of one layer-direction's parameters, keyed w_ih, w_hh, b_ih, b_hh,
    w_hr (a layer has those of them its options call for)."""
    suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
    return {"w_ih": f"weight_ih_{suffix}", "w_hh": f"weight_hh_{suffix}",
            "b_ih": f"bias_ih_{suffix}", "b_hh": f"bias_hh_{suffix}",
            "w_hr": f"weight_hr_{suffix}", **variant_param_names(layer, direction)}


def variant_param_names(layer: int, direction: int) -> dict:
    """Names of the cell variants' parameters (lstm_xp.cell_variants), keyed w_ci, w_cf,
    w_co (peephole) and ln_ih, ln_hh, ln_c_w, ln_c_b (layer_norm)."""
    suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
    return {"w_ci": f"weight_ci_{suffix}", "w_cf": f"weight_cf_{suffix}",
            "w_co": f"weight_co_{suffix}", "ln_ih": f"ln_ih_weight_{suffix}",
            "ln_hh": f"ln_hh_weight_{suffix}", "ln_c_w": f"ln_c_weight_{suffix}",
            "ln_c_b": f"ln_c_bias_{suffix}"}


def init_variant_params(params: dict, hidden_size, num_layers, num_directions,
                        opts: CellOptions) -> dict:
    """``params`` (init_lstm_params') with the variants' parameters after each layer-direction's
    own: peephole weights 0, layer-norm gains 1 and the cell's bias 0 (nothing random, so the
    plain parameters are those of the plain LSTM with the same seed)."""
    H, out = hidden_size, {}
    for k in range(num_layers):
        for d in range(num_directions):
            names = param_names(k, d)
            for key in ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr"):
                if names[key] in params:
                    out[names[key]] = params[names[key]]
            if opts.peephole:
                for key in ("w_ci", "w_cf", "w_co"):
                    out[names[key]] = np.zeros(H)
            if opts.layer_norm:
                out[names["ln_ih"]], out[names["ln_hh"]] = np.ones(4 * H), np.ones(4 * H)
                out[names["ln_c_w"]], out[names["ln_c_b"]] = np.ones(H), np.zeros(H)
    return out


def init_lstm_params(input_size, hidden_size, num_layers, num_directions, rng,
                     forget_bias=None, recurrent_init="uniform", bias=True,
                     proj_size=0) -> dict:
    """Initial parameters as host float64 arrays, by PyTorch name, in torch's order.

    Every entry ~ U(-1/sqrt(H), 1/sqrt(H)) as in ``torch.nn.LSTM``; optionally
    ``weight_hh`` as four independent random orthogonal blocks (one per gate; (H, P) with
    orthonormal columns when projecting), and the forget-gate bias set so that
    b_if + b_hf = ``forget_bias``.
    """
    H, P = hidden_size, proj_size or hidden_size
    bound = 1.0 / math.sqrt(H)
    params = {}
    for k in range(num_layers):
        in_k = input_size if k == 0 else P * num_directions
        for d in range(num_directions):
            names = param_names(k, d)
            params[names["w_ih"]] = rng.uniform(-bound, bound, (4 * H, in_k))
            if recurrent_init == "orthogonal":
                params[names["w_hh"]] = np.concatenate(
                    [_random_orthogonal(rng, H, P) for _ in range(4)])
            else:
                params[names["w_hh"]] = rng.uniform(-bound, bound, (4 * H, P))
            if bias:
                params[names["b_ih"]] = rng.uniform(-bound, bound, 4 * H)
                params[names["b_hh"]] = rng.uniform(-bound, bound, 4 * H)
                if forget_bias is not None:
                    params[names["b_ih"]][H:2 * H] = forget_bias
                    params[names["b_hh"]][H:2 * H] = 0.0
            if proj_size:
                params[names["w_hr"]] = rng.uniform(-bound, bound, (P, H))
    return params


def _random_orthogonal(rng, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (rows >= cols), drawn uniformly
    (QR of a Gaussian, signs fixed); orthogonal when square."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def _cell_options(peephole, layer_norm, zoneout, recurrent_dropout, weight_drop,
                  proj_size) -> CellOptions:
    """The validated variant options (ValueError/TypeError naming the option)."""
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise ValueError(f"zoneout must be p or a pair (p_c, p_h), got {zoneout!r}")
        zoneout = (probability("zoneout[0] (p_c)", zoneout[0]),
                   probability("zoneout[1] (p_h)", zoneout[1]))
    else:
        zoneout = (probability("zoneout", zoneout),) * 2
    rates = {}
    for name, value in (("recurrent_dropout", recurrent_dropout), ("weight_drop", weight_drop)):
        rates[name] = probability(name, value)
        if rates[name] >= 1:
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r} (p = 1 would "
                             "drop every recurrent connection)")
    opts = CellOptions(flag("peephole", peephole), flag("layer_norm", layer_norm), zoneout,
                       rates["recurrent_dropout"], rates["weight_drop"])
    if proj_size and not opts.plain:
        raise ValueError(f"{opts.active()[0]} with proj_size={proj_size}: the cell variants "
                         "are not implemented with a projection; use one or the other")
    return opts


class LSTM(SequenceLayout, Module):
    """Long short-term memory over sequences, forward and backward written by hand.

    Args (the first eight in torch.nn.LSTM's positional order; the rest keyword-only):
        input_size: I, features per step of the input.
        hidden_size: H, units per layer and direction.
        num_layers: L, stacked layers (layer k > 0 reads layer k-1's outputs).
        bias: learn b_ih and b_hh (False: no bias parameters, as torch).
        batch_first: x and y are (B, T, features) instead of (T, B, features).
        dropout: p in [0, 1]; in training mode each layer's output but the last is
            multiplied by an inverted-dropout mask (0 with probability p, else 1/(1-p)),
            drawn from the backend's generator (``lstm_xp.manual_seed``).
        bidirectional: add a reverse direction per layer (D = 2).
        proj_size: P, 0 <= P < H; if > 0 each output is projected, h_t = W_hr m_t (LSTMP).
        dtype: "float32" or "float64".
        device: "cpu", "gpu", "auto" or a ``backends.Backend``.
        seed: seed of the initialisation (None: the next draws of the stream that
            ``lstm_xp.manual_seed`` seeds, fresh entropy until it is called).
        forget_bias: if given, initialise b_if + b_hf to this value (1.0 is common).
        recurrent_init: "uniform" (as PyTorch) or "orthogonal" for ``weight_hh``.
        peephole: c_{t-1} feeds i and f, c_t feeds o, through weight_c{i,f,o}_l{k} (H,),
            starting at 0 (Gers, Schraudolph & Schmidhuber 2002).
        layer_norm: normalise the input and recurrent products (gains ln_ih_weight_l{k},
            ln_hh_weight_l{k} (4H,)) and the cell before its tanh (ln_c_weight_l{k},
            ln_c_bias_l{k} (H,)) (Ba, Kiros & Hinton 2016).
        zoneout: p or (p_c, p_h) in [0, 1]: in training each cell/hidden unit keeps its
            previous value with that probability per step; eval mode mixes by p
            (Krueger et al. 2017).
        recurrent_dropout: p in [0, 1): one inverted-dropout mask on h_{t-1} per forward
            call, the same at every step (Gal & Ghahramani 2016).
        weight_drop: p in [0, 1): one inverted-dropout mask on weight_hh per forward call
            (DropConnect, Wan et al. 2013; AWD-LSTM).
        The variants' equations are in ``lstm_xp.cell_variants``; every combination
        works, none with proj_size > 0. With all of them off the layer is the plain one.

    Shapes (as ``torch.nn.LSTM``), with P_out = P if proj_size else H: x (T, B, I), or
    (B, T, I) with batch_first, or (T, I) unbatched; y (T, B, D*P_out) with the forward
    direction first in the last axis; h_n (L*D, B, P_out); c_n (L*D, B, H) (without B
    when unbatched).

    Modes and tapes follow ``lstm_xp.module``: a training-mode forward keeps a tape, and
    ``backward`` consumes the most recent one (or the one passed) and adds to ``grads``.

    Example::

        lstm = LSTM(8, 32, num_layers=2, dropout=0.2, seed=0)
        y, (h_n, c_n) = lstm.forward(x)                  # x (T, B, 8)
        lstm.zero_grad()
        dx, (dh0, dc0) = lstm.backward(dy)               # adds to lstm.grads
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype="float32",
                 device="cpu", seed=None, forget_bias=None, recurrent_init="uniform",
                 peephole=False, layer_norm=False, zoneout=0.0, recurrent_dropout=0.0,
                 weight_drop=0.0):
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.bidirectional = flag("bidirectional", bidirectional)
        self.batch_first = flag("batch_first", batch_first)
        self.bias = flag("bias", bias)
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) \
                or not 0 <= proj_size < self.hidden_size:
            raise ValueError(f"proj_size must be an integer in [0, hidden_size) = "
                             f"[0, {self.hidden_size}), got {shown(proj_size)}")
        self.proj_size = int(proj_size)
        self.dropout = probability("dropout", dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout={self.dropout} acts between stacked layers, so with "
                          "num_layers=1 it does nothing (as in torch.nn.LSTM)", UserWarning,
                          stacklevel=2)
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"recurrent_init must be one of {RECURRENT_INITS}, got {recurrent_init!r}")
        if forget_bias is not None:
            forget_bias = finite_number("forget_bias", forget_bias)
        if forget_bias is not None and not self.bias:
            raise ValueError("forget_bias sets the forget gate's bias, but bias=False")
        self.cell = _cell_options(peephole, layer_norm, zoneout, recurrent_dropout,
                                  weight_drop, self.proj_size)
        super().__init__(device, dtype)
        self.num_directions = 2 if self.bidirectional else 1
        rng = parameter_generator(seed)
        params = init_lstm_params(self.input_size, self.hidden_size, self.num_layers,
                                  self.num_directions, rng, forget_bias, recurrent_init,
                                  self.bias, self.proj_size)
        if not self.cell.plain:
            params = init_variant_params(params, self.hidden_size, self.num_layers,
                                         self.num_directions, self.cell)
        self._init_params(params)

    def _variant_masks(self, T: int, B: int) -> dict:
        """One layer-direction's masks for a training-mode forward (see cell_variants)."""
        backend, cell, H = self.backend, self.cell, self.hidden_size
        masks = {}
        if cell.recurrent_dropout:
            masks["recurrent"] = backend.dropout_mask((B, H), cell.recurrent_dropout, self.dtype)
        if cell.weight_drop:
            masks["weight"] = backend.dropout_mask((4 * H, H), cell.weight_drop, self.dtype)
        if any(cell.zoneout):        # keep (1) with probability p: not dropped at rate 1 - p
            for key, p in zip(("zone_c", "zone_h"), cell.zoneout):
                kept = backend.dropout_mask((T, B, H), 1.0 - p, self.dtype) > 0
                masks[key] = backend.xp.astype(kept, self.dtype)
        return masks

    @property
    def output_size(self) -> int:
        """P_out: features per direction of y and h_n (proj_size if set, else hidden_size)."""
        return self.proj_size or self.hidden_size

    def __repr__(self) -> str:
        defaults = {"bias": True, "dropout": 0.0, "proj_size": 0, **vars(CellOptions())}
        values = {"bias": self.bias, "dropout": self.dropout, "proj_size": self.proj_size,
                  **vars(self.cell)}
        extra = "".join(f", {k}={v!r}" for k, v in values.items() if v != defaults[k])
        return (f"LSTM({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, batch_first={self.batch_first}{extra}, "
                f"dtype={self.dtype_name!r}, device={self.device!r})")

    def _layer_params(self, k: int, d: int, store=None):
        """One layer-direction's arrays of ``store`` (default: params), by w_ih ... w_hr key."""
        store = self.params if store is None else store
        return {key: store[name] for key, name in param_names(k, d).items() if name in store}

    def _states_in(self, prefix, names, pair, batch, unbatched):
        """(h, c) of a state pair: h has P_out features, c has H."""
        h_size = "proj_size" if self.proj_size else "hidden_size"
        h, c = pair
        return (self._state_in(f"{prefix}[0] ({names[0]})", h, batch, unbatched,
                               self.output_size, h_size),
                self._state_in(f"{prefix}[1] ({names[1]})", c, batch, unbatched,
                               self.hidden_size, "hidden_size"))

    # ------------------------------------------------------------------ forward
    def _lengths_in(self, lengths, T: int, B: int, unbatched: bool):
        """Validated ``lengths`` as (hold, valid) device masks (T, B, 1), or (None, None).

        hold = t >= lengths[b] (bool, the padded steps); valid = 1 - hold in the layer dtype.
        """
        if lengths is None:
            return None, None
        if unbatched:
            raise ValueError("lengths applies to batched input (T, B, I); x is unbatched (T, I)")
        host = python_numbers(lengths, "lengths") if isinstance(lengths, (list, tuple)) \
            else np.asarray(to_numpy(lengths))
        if host.dtype == bool or not np.issubdtype(host.dtype, np.integer):
            raise TypeError(f"lengths must hold integers, got dtype {host.dtype}")
        if host.shape != (B,):
            raise ValueError(f"lengths must have shape (batch,) = ({B},), got {host.shape}")
        if host.min() < 1 or host.max() > T:
            bad = int(np.argmax((host < 1) | (host > T)))
            raise ValueError(f"lengths must be in [1, {T}] (1 to the number of steps; "
                             f"zero-length sequences are not allowed), got lengths[{bad}] = "
                             f"{int(host[bad])}")
        if np.all(host == T):
            return None, None
        hold = (np.arange(T)[:, None] >= host[None, :])[:, :, None]
        return (self.backend.asarray(hold),
                self.backend.asarray(np.logical_not(hold), dtype=self.dtype))

    def forward(self, x, state=None, *, lengths=None, train=None, return_tape: bool = False):
        """Run the LSTM over a batch of sequences.

        Args:
            x: (T, B, I), or (B, T, I) if batch_first, or (T, I) unbatched: a NumPy array,
               an array on the layer's device, or any array with ``__dlpack__`` or
               ``__array__`` (e.g. a torch CPU tensor), of the layer's dtype.
            state: (h0, c0), h0 (L*D, B, P_out) and c0 (L*D, B, H) -- without B unbatched --,
               or None for zeros.
            lengths: (B,) integers in [1, T] (host or device) for a right-padded batch, as
               PyTorch's packed sequences: outputs past each length are zero, (h_n, c_n) are
               each sequence's state at its own last step, the reverse direction starts at
               that step, and padded steps add nothing to any gradient. None: all have T.
            train: None (the layer's mode), True or False: this call's mode. Training mode
               applies dropout and keeps a tape for :meth:`backward`; eval keeps nothing.
            return_tape: also return the tape (None in eval mode), to pass to backward.

        Returns:
            y: (T, B, D*P_out) [or (B, T, D*P_out), or (T, D*P_out)]: last layer's h_t,
               forward direction in [..., :P_out], reverse in [..., P_out:].
            (h_n, c_n): (L*D, B, P_out) and (L*D, B, H) [or without B]; entry k*D + d is
               layer k, direction d.
            tape: only with ``return_tape``.
        """
        backend, xp = self.backend, self.backend.xp
        training = self._training_call(train)
        layer_input, unbatched = self._input_sequence(x)
        T, B = layer_input.shape[0], layer_input.shape[1]
        h0, c0 = self._states_in("state", ("h0", "c0"), self._pair("state", "(h0, c0)", state),
                                 B, unbatched)
        hold, valid = self._lengths_in(lengths, T, B, unbatched)
        if hold is not None:        # padding is ignored, whatever it holds (NaN included)
            layer_input[...] = xp.where(hold, 0.0, layer_input)
        check_finite(backend, {"x": layer_input, "state[0] (h0)": h0, "state[1] (c0)": c0})
        H, P, D, L = self.hidden_size, self.output_size, self.num_directions, self.num_layers
        h_n = backend.empty((L * D, B, P), self.dtype)
        c_n = backend.empty((L * D, B, H), self.dtype)
        zero_h = backend.zeros((B, P), self.dtype) if h0 is None else None
        zero_c = backend.zeros((B, H), self.dtype) if c0 is None else None
        tapes, masks = [], []
        for k in range(L):
            y = backend.empty((T, B, D * P), self.dtype)
            layer_tapes = []
            for d in range(D):
                s = k * D + d
                p = self._layer_params(k, d)
                h_start = zero_h if h0 is None else h0[s, ...]
                c_start = zero_c if c0 is None else c0[s, ...]
                if self.cell.plain:
                    tape = direction_forward(backend, layer_input, p["w_ih"], p["w_hh"],
                                             p.get("b_ih"), p.get("b_hh"), h_start, c_start,
                                             reverse=d == 1, hold=hold, w_hr=p.get("w_hr"),
                                             for_backward=training)
                else:
                    tape = variant_forward(backend, layer_input, p, h_start, c_start, d == 1,
                                           hold, self.cell,
                                           self._variant_masks(T, B) if training else {},
                                           training)
                y[:, :, d * P:(d + 1) * P] = tape.outputs()
                if valid is not None:
                    y[:, :, d * P:(d + 1) * P] *= valid
                h_last, c_last = tape.final_state()
                h_n[s, ...] = h_last
                c_n[s, ...] = c_last
                layer_tapes.append(tape)
            mask = None
            if training and self.dropout > 0 and k < L - 1:     # between layers, as torch
                mask = backend.dropout_mask((T, B, D * P), self.dropout, self.dtype)
                y *= mask
            tapes.append(layer_tapes)
            masks.append(mask)
            layer_input = y
        outputs = (self._user_layout(layer_input, unbatched),
                   (self._state_out(h_n, unbatched), self._state_out(c_n, unbatched)))
        if not training:
            return outputs + (None,) if return_tape else outputs
        tape = self._keep({"tapes": tapes, "masks": masks, "unbatched": unbatched})
        return outputs + (tape,) if return_tape else outputs

    __call__ = forward

    # ----------------------------------------------------------------- backward
    def backward(self, dy=None, dstate=None, *, tape=None, _record=None):
        """Backpropagate through time one training-mode forward: the most recent one not yet
        backpropagated, or the one whose ``tape`` is given.

        Args:
            dy: dL/dy, shaped like y, or None (no loss on the outputs).
            dstate: (dh_n, dc_n) shaped like (h_n, c_n), either may be None; or None.
            tape: a tape from ``forward(..., return_tape=True)``; None: the most recent.

        Returns:
            dx: dL/dx, shaped like x.
            (dh0, dc0): dL/dh0 and dL/dc0, shaped like the state (also when forward
                started from zeros).

        Side effect: dL/d``params[name]`` is *added* to ``self.grads[name]`` for every
        parameter (``zero_grad()`` resets them). The tape is used up. ``_record``
        (lstm_xp.inspect.trace): {(layer, direction): (dh_steps, dc_steps)} arrays receiving
        the per-step dL/dh_t and dL/dc_t (see lstm_xp.bptt.direction_backward).

        Raises:
            RuntimeError: no outstanding forward; a consumed tape; a tape whose forward ran
                before ``load_state_dict()`` or ``to()``.
        """
        backend = self.backend
        if _record is not None and not self.cell.plain:
            raise NotImplementedError("per-step gradients are recorded for the plain LSTM "
                                      "cell (with or without proj_size), not for the cell "
                                      f"variants ({', '.join(self.cell.active())})")
        kept = self._find_tape(tape)
        data = kept.data
        unbatched, tapes, masks = data["unbatched"], data["tapes"], data["masks"]
        T, B = tapes[0][0].x.shape[0], tapes[0][0].x.shape[1]
        H, P, D, L = self.hidden_size, self.output_size, self.num_directions, self.num_layers
        if dy is not None:
            dy = as_input(backend, dy, "dy", self.dtype, ndims=(2,) if unbatched else (3,))
            size = "proj_size" if self.proj_size else "hidden_size"
            shape, axes = self._user_shape(T, B, D * P, unbatched, f"num_directions * {size}")
            check_shape("dy", dy, shape, axes)
            # the per-step primitives read dy by rows: one copy where its rows are strided
            dy = rows_contiguous(backend, self._time_major(dy, unbatched))
            hold = tapes[0][0].hold
            if hold is not None:           # outputs at padded steps are constant zeros
                dy = backend.xp.where(hold, 0.0, dy)
        dh_n, dc_n = self._states_in("dstate", ("dh_n", "dc_n"),
                                     self._pair("dstate", "(dh_n, dc_n)", dstate), B, unbatched)
        check_finite(backend, {"dy": dy, "dstate[0] (dh_n)": dh_n, "dstate[1] (dc_n)": dc_n})
        self._consume(kept)      # backward overwrites the saved gates: no second use
        dh0 = backend.empty((L * D, B, P), self.dtype)
        dc0 = backend.empty((L * D, B, H), self.dtype)
        d_out = dy
        for k in reversed(range(L)):
            if k < L - 1 and masks[k] is not None and d_out is not None:
                d_out = d_out * masks[k]        # through layer k's dropout
            d_in = backend.empty(tuple(tapes[k][0].x.shape), self.dtype)
            for d in range(D):
                s = k * D + d
                p = self._layer_params(k, d)
                dy_kd = None if d_out is None else d_out[:, :, d * P:(d + 1) * P]
                dh_kd = None if dh_n is None else dh_n[s, ...]
                dc_kd = None if dc_n is None else dc_n[s, ...]
                grads = self._layer_params(k, d, self.grads)
                if self.cell.plain:
                    dh, dc = direction_backward(backend, tapes[k][d], p["w_ih"], p["w_hh"],
                                                dy_kd, dh_kd, dc_kd, grads, d_in,
                                                accumulate_dx=d > 0, w_hr=p.get("w_hr"),
                                                record=None if _record is None
                                                else _record.get((k, d)))
                else:
                    dh, dc = variant_backward(backend, tapes[k][d], p, self.cell, dy_kd, dh_kd,
                                              dc_kd, grads, d_in, accumulate_dx=d > 0)
                dh0[s, ...] = dh
                dc0[s, ...] = dc
            d_out = d_in
        return (self._user_layout(d_out, unbatched),
                (self._state_out(dh0, unbatched), self._state_out(dc0, unbatched)))
