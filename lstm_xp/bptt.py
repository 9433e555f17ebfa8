"""One direction of one LSTM layer through time: forward, and backpropagation through time.

Notation (shapes): T steps, B batch, I input features, H hidden units.
    x        (T, B, I)    input of the layer
    W_ih     (4H, I)      W_hh (4H, H)      b_ih, b_hh (4H,)     rows in gate order i, f, g, o
    a_t      (B, 4H)      gate pre-activations   a_t = x_t W_ih^T + h_prev W_hh^T + b_ih + b_hh
    h_t, c_t (B, H)       hidden and cell state

A forward direction visits t = 0, 1, ..., T-1 and its "previous" state is that of t-1;
a reverse direction visits t = T-1, ..., 0 and its previous state is that of t+1. The
states live in (T+1, B, H) buffers laid out in time order with the initial state in the
extra slot (slot 0 forward, slot T reverse), so that for either direction

    outputs  = h[cur]   with cur  = t + 1 forward, t     reverse
    previous = h[prev]  with prev = t     forward, t + 1 reverse

are plain contiguous slices: no flips, no copies.

Cost per direction: one (T*B, I) x (I, 4H) GEMM for the input projection of every step,
then per step one (B, H) x (H, 4H) GEMM and one fused cell pass; backward mirrors it
(one cell pass and one (B, 4H) x (4H, H) GEMM per step, plus one pass per block of steps
for the local derivatives) and computes dW_ih, dW_hh, db and dx after the loop as single
GEMMs / reductions over all steps. Without a projection the two time loops are backend
primitives (Backend.lstm_forward_steps, Backend.lstm_backward_steps) whose generic versions make
exactly these per-step calls; the NumPy backend runs them as compiled loops at tiny shapes
where numba is installed.

Projection (LSTMP, ``proj_size`` P > 0, as torch.nn.LSTM): the cell's output m_t = o_t * tanh(c_t)
(B, H) is projected, h_t = m_t W_hr^T with W_hr (P, H), so h and W_hh's columns have P
entries. Forward adds one (B, H) x (H, P) GEMM per step; backward one (B, P) x (P, H) GEMM per
step (dm_t = dh_t W_hr, which takes dh's place in the cell's backward) and
dW_hr = sum_t dh_t^T m_t after the loop.

Gradients are *added* to the ``grads`` arrays (they accumulate until the caller zeroes them).

Padded batches (sequences of different lengths, right-padded to T): a (T, B, 1) boolean
``hold`` marks the padded steps (t >= length of sequence b). There the cell's result is
discarded and the state is carried through unchanged,

    h_t = h_prev,  c_t = c_prev   where hold[t, b]     (an exact select, no arithmetic)

so a reverse direction starts from h0 at each sequence's own last step, h_n/c_n are each
sequence's state at its own last step, and in backward the gradients pass straight through
padded steps (dh_prev = dh_t, dc_prev = dc_t) while their gate gradients are zero: padded
steps contribute nothing to any weight, bias or input gradient. The selects are folded
into the cell primitives (``hold=``), so a padded step costs what any step costs: one
GEMM and one cell pass each way (with a projection, two selects more per step each way).

The per-step primitives trust their operands; :func:`check_step_operands` checks every
array's backend, dtype, shape and layout once per direction call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DirectionTape:
    """What one direction's forward keeps for its backward.

    Attributes:
        x: (T, B, I) the layer input.
        gates: (T, B, 4H) activated gates [i f g o] (overwritten by backward).
        h: (T+1, B, P) hidden states (P = H without projection), the initial one included
            (see module docstring).  c: (T+1, B, H) cell states, likewise.
        reverse: whether this direction runs from t = T-1 down to 0.
        hold: (T, B, 1) bool, True at padded steps; None when every sequence has T steps.
        m: (T, B, H) the cell outputs o * tanh(c) before the projection; None without one.
    """

    x: object
    gates: object
    h: object
    c: object
    reverse: bool
    hold: object = None
    m: object = None

    @property
    def steps(self) -> int:
        return self.gates.shape[0]

    def slot_offsets(self):
        """(prev, cur): time t's previous state is slot t + prev, its own is slot t + cur."""
        return (1, 0) if self.reverse else (0, 1)

    def outputs(self):
        """(T, B, H) hidden states in time order (a view)."""
        cur = self.slot_offsets()[1]
        return self.h[cur:cur + self.steps, ...]

    def previous_h(self):
        """(T, B, H) the state each step started from, in time order (a view)."""
        prev = self.slot_offsets()[0]
        return self.h[prev:prev + self.steps, ...]

    def final_state(self):
        """(h_n, c_n), each (B, H): the state after the last step visited."""
        last = 0 if self.reverse else self.steps
        return self.h[last, ...], self.c[last, ...]

    def time_order(self):
        """Time indices in the order forward visits them."""
        T = self.steps
        return range(T - 1, -1, -1) if self.reverse else range(T)


def direction_forward(backend, x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse: bool,
                      hold=None, w_hr=None, for_backward: bool = True) -> DirectionTape:
    """Run one direction over the whole sequence.

    Args:
        x: (T, B, I) C-contiguous input. w_ih (4H, I), w_hh (4H, P); b_ih, b_hh (4H,) or
            None (no biases).
        h0 (B, P), c0 (B, H): initial state.
        reverse: visit t = T-1 ... 0 instead of 0 ... T-1.
        hold: (T, B, 1) bool marking padded steps, or None (see module docstring).
        w_hr: (P, H) projection of the cell output, or None (P = H, no projection).
        for_backward: False when only the outputs and final state will be read (an eval
            forward): the backend may then skip storing the activations.

    Returns:
        The tape: outputs, final state and everything backward needs.
    """
    xp = backend.xp
    T, B, I = x.shape
    H = w_ih.shape[0] // 4
    P = w_hh.shape[1]
    check_step_operands(backend, x.dtype, {
        "x": (x, (T, B, I)), "w_ih": (w_ih, (4 * H, I)), "w_hh": (w_hh, (4 * H, P)),
        "b_ih": (b_ih, (4 * H,)), "b_hh": (b_hh, (4 * H,)), "h0": (h0, (B, P)),
        "c0": (c0, (B, H)), "w_hr": (w_hr, (P, H))}, layout={"x": "C"})
    if hold is not None and (hold.dtype != xp.bool or tuple(hold.shape) != (T, B, 1)):
        raise ValueError(f"hold must be a ({T}, {B}, 1) bool array, got {hold.dtype} "
                         f"{tuple(hold.shape)}")
    # a_t = x_t W_ih^T + (b_ih + b_hh) for all t at once; h_prev W_hh^T is added per step
    gates = xp.reshape(xp.matmul(xp.reshape(x, (T * B, I)), w_ih.T), (T, B, 4 * H))
    if b_ih is not None:
        gates += b_ih + b_hh
    h = backend.empty((T + 1, B, P), x.dtype)
    c = backend.empty((T + 1, B, H), x.dtype)
    m = None if w_hr is None else backend.empty((T, B, H), x.dtype)
    tape = DirectionTape(x=x, gates=gates, h=h, c=c, reverse=reverse, hold=hold, m=m)
    prev, cur = tape.slot_offsets()
    first = T if reverse else 0
    h[first, ...] = h0
    c[first, ...] = c0
    w_hh_t = backend.transposed_operand(w_hh)
    if m is None:      # per step: a_t += h_prev W_hh^T, then the cell (which keeps held rows)
        if for_backward:
            backend.lstm_forward_steps(gates, h, c, w_hh_t, hold, reverse)
        else:
            backend.lstm_forward_steps(gates, h, c, w_hh_t, hold, reverse,
                                       keep_activations=False)
        return tape
    w_hr_t = backend.transposed_operand(w_hr)
    for t in tape.time_order():
        gates_t, h_prev = gates[t, ...], h[t + prev, ...]
        held = None if hold is None else hold[t, ...]
        backend.matmul_acc(h_prev, w_hh_t, out=gates_t)
        # the cell writes m_t; h_t = m_t W_hr^T
        backend.lstm_cell_forward(gates_t, c[t + prev, ...], c[t + cur, ...], m[t, ...])
        backend.matmul_into(m[t, ...], w_hr_t, out=h[t + cur, ...])
        if held is not None:
            backend.keep_where(h[t + cur, ...], h_prev, held)
            backend.keep_where(c[t + cur, ...], c[t + prev, ...], held)
    return tape


def direction_backward(backend, tape: DirectionTape, w_ih, w_hh, dy, dh_n, dc_n,
                       grads: dict, dx, accumulate_dx: bool, w_hr=None, record=None):
    """Backpropagate one direction through time; consumes ``tape`` (its gates are overwritten).

    Args:
        tape: from :func:`direction_forward`.
        w_ih, w_hh, w_hr: the weights forward used (w_hr None without projection).
        dy: (T, B, P) dL/d(outputs) of this direction (any strides) or None for zeros;
            zero at padded steps when the tape has ``hold``.
        dh_n (B, P), dc_n (B, H): dL/dh_n and dL/dc_n, or None for zeros.
        grads: dict with arrays "w_ih" (4H, I), "w_hh" (4H, P), and "b_ih", "b_hh" (4H,) if
            the layer has biases, "w_hr" (P, H) if it projects; this direction's parameter
            gradients are *added* to them.
        dx: (T, B, I) C-contiguous array receiving dL/dx, added to it if ``accumulate_dx``.
        record: None, or (dh_steps (T, B, P), dc_steps (T, B, H)) arrays receiving, for
            every step, dL/dh_t and dL/dc_t in total (through the output, the next step and
            dh_n/dc_n: what autograd gives as h_t.grad and c_t.grad of an unrolled loop);
            at padded steps, the gradients carried through them (lstm_xp.inspect.trace).
            The loop then runs step by step.

    Returns:
        (dh0, dc0), each (B, P) and (B, H): gradients of the initial state.

    Steps are visited in the reverse of forward's order, in blocks of S steps. For each
    block the local derivatives (alpha, k, f; see Backend.lstm_backward_factors) are
    computed at once from the saved activations; then per step t, with dh_t the gradient
    of h_t through both the output and the next step, and dc the gradient of c_t through
    the next step:

        dh_t  = dy_t + da_{next} W_hh               (carried in ``dh``)
        dm_t  = dh_t                                 (dm_t = dh_t W_hr with a projection)
        dc_t  = dc + dm_t * alpha_t
        da_t  = [dc_t k_i, dc_t k_f, dc_t k_g, dm_t k_o]      dc <- dc_t * f_t
    and after the loop, over all steps at once:

        dW_ih = sum_t da_t^T x_t      dW_hh = sum_t da_t^T h_prev(t)
        db_ih = db_hh = sum_t da_t    dx_t  = da_t W_ih      dW_hr = sum_t dh_t^T m_t

    At padded steps the factors are alpha = 0, k = 0, f = 1, so dc passes through
    unchanged and da_t = 0; the cell leaves dh_t on held rows and 0 on the others, and the
    GEMM adds da_t W_hh to it, so held rows pass dh_t on. With a projection the step's
    dh_t is left out of dW_hr (m_t is zeroed there), since there h_t = h_prev.
    """
    xp = backend.xp
    T, B, I = tape.x.shape
    H, P = tape.c.shape[-1], tape.h.shape[-1]
    dtype = tape.x.dtype
    gates, c, hold, m = tape.gates, tape.c, tape.hold, tape.m
    check_step_operands(backend, dtype, {"w_ih": (w_ih, (4 * H, I)), "w_hh": (w_hh, (4 * H, P)),
                                         "w_hr": (w_hr, (P, H)), "dy": (dy, (T, B, P)),
                                         "dh_n": (dh_n, (B, P)), "dc_n": (dc_n, (B, H)),
                                         "dx": (dx, (T, B, I))}, layout={"dy": "rows", "dx": "C"})
    prev, cur = tape.slot_offsets()
    dc = backend.zeros((B, H), dtype)                      # C-contiguous
    if dc_n is not None:
        dc[...] = dc_n
    if m is None:
        dh = backend.zeros((B, P), dtype)
        dy_cell = dy
    else:
        # dh_slots[t + cur] carries dL/dh_t from step t+1 (slot layout as the states); the
        # cell needs dm_t = (dh_t + dy_t) W_hr, whose dy part is one GEMM for all steps
        dh_slots = backend.zeros((T + 1, B, P), dtype)
        dh = dh_slots[T if not tape.reverse else 0, ...]
        dm = backend.empty((B, H), dtype)
        dy_cell = None if dy is None else xp.matmul(dy, w_hr)          # (T, B, H)
    if dh_n is not None:
        dh[...] = dh_n
    S = backend.backward_block_steps(T, B, H, xp.finfo(dtype).bits // 8)
    alpha, f_gate = backend.empty((S, B, H), dtype), backend.empty((S, B, H), dtype)
    visits = list(reversed(tape.time_order()))
    for first in range(0, T, S):
        block = visits[first:first + S]
        lo, n_steps = min(block), len(block)
        hi = lo + n_steps                          # the block covers times lo ... hi - 1
        backend.lstm_backward_factors(gates[lo:hi, ...], c[lo + prev:hi + prev, ...],
                                      c[lo + cur:hi + cur, ...], alpha[:n_steps, ...],
                                      f_gate[:n_steps, ...],
                                      None if hold is None else hold[lo:hi, ...])
        if m is None and record is not None:     # one step at a time, recording
            for t in block:
                s = t - lo
                dy_t = None if dy_cell is None else dy_cell[t:t + 1, ...]
                dh_total = dh if dy_t is None else dh + dy_t[0]
                record[0][t, ...] = dh_total                    # dL/dh_t
                record[1][t, ...] = dc + dh_total * alpha[s]    # dL/dc_t (cell's dc_t)
                backend.lstm_backward_steps(gates[t:t + 1, ...], alpha[s:s + 1, ...],
                                            f_gate[s:s + 1, ...], dh, dc, w_hh, dy_t,
                                            None if hold is None else hold[t:t + 1, ...],
                                            tape.reverse)
            continue
        if m is None:    # per step: the cell's backward, then dL/dh_prev = da_t W_hh
            backend.lstm_backward_steps(gates[lo:hi, ...], alpha[:n_steps, ...],
                                        f_gate[:n_steps, ...], dh, dc, w_hh,
                                        None if dy_cell is None else dy_cell[lo:hi, ...],
                                        None if hold is None else hold[lo:hi, ...], tape.reverse)
            continue
        for t in block:    # with a projection: dm_t = dh_t W_hr takes dh's place in the cell
            gates_t = gates[t, ...]                     # factors k_t in, da_t out
            held = None if hold is None else hold[t, ...]
            dy_t = None if dy_cell is None else dy_cell[t, ...]
            backend.matmul_into(dh_slots[t + cur, ...], w_hr, out=dm)
            if record is not None:       # dL/dh_t of the projected h_t, and dL/dc_t
                record[0][t, ...] = dh_slots[t + cur, ...] if dy is None \
                    else dh_slots[t + cur, ...] + dy[t, ...]
                dm_total = dm if dy_t is None else dm + dy_t
                record[1][t, ...] = dc + dm_total * alpha[t - lo, ...]
            backend.lstm_cell_backward_step(gates_t, alpha[t - lo, ...], f_gate[t - lo, ...],
                                            dm, dc, dy_t)
            backend.matmul_into(gates_t, w_hh, out=dh_slots[t + prev, ...])
            if held is not None:    # padded rows pass dh straight through
                backend.keep_where(dh_slots[t + prev, ...], dh_slots[t + cur, ...], held)
    da = xp.reshape(gates, (T * B, 4 * H))
    backend.matmul_acc(da.T, xp.reshape(tape.x, (T * B, I)), out=grads["w_ih"])
    backend.matmul_acc(da.T, xp.reshape(tape.previous_h(), (T * B, P)), out=grads["w_hh"])
    if "b_ih" in grads:
        db = xp.sum(da, axis=0)
        grads["b_ih"] += db
        grads["b_hh"] += db
    if m is not None:    # dW_hr = sum over real steps of (dh_t + dy_t)^T m_t
        if hold is not None:
            m *= xp.astype(xp.logical_not(hold), dtype)
        m2 = xp.reshape(m, (T * B, H))
        backend.matmul_acc(xp.reshape(dh_slots[cur:cur + T, ...], (T * B, P)).T, m2,
                           out=grads["w_hr"])
        if dy is not None:
            backend.matmul_acc(xp.reshape(dy, (T * B, P)).T, m2, out=grads["w_hr"])
        dh = dh_slots[0 if not tape.reverse else T, ...]
    dx2 = xp.reshape(dx, (T * B, I))
    (backend.matmul_acc if accumulate_dx else backend.matmul_into)(da, w_ih, out=dx2)
    return dh, dc


def check_step_operands(backend, dtype, arrays: dict, layout: dict) -> None:
    """Check, once per direction, what the per-step primitives trust: each array (name ->
    (array or None, shape)) is this backend's, of ``dtype`` and that shape, and laid out as
    ``layout`` says (name -> "C": C-contiguous, reshaped as a view; "rows": unit stride
    along the last axis and none negative, as the CUDA cell reads dy; the layers copy a
    user's dy into that form, ``lstm_xp.arrays.rows_contiguous``). A fused kernel given a
    float64 array where it expects float32 would silently compute garbage."""
    for name, (a, shape) in arrays.items():
        if a is None:
            continue
        if not backend.owns(a):
            raise TypeError(f"{name} must be an array of the {backend.name!r} backend, got "
                            f"{type(a).__module__}.{type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{name} must have dtype {backend.dtype_name(dtype)}, got "
                            f"{backend.dtype_name(a.dtype)}")
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(a.shape)}")
        strides = getattr(a, "strides", None)     # None: an array library without strides
        if name not in layout or strides is None:
            continue
        if layout[name] == "C" and not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous, got strides {strides}")
        if layout[name] == "rows" and ((a.shape[-1] > 1 and strides[-1] != a.dtype.itemsize)
                                       or min(strides) < 0):
            raise ValueError(f"{name} must have unit stride along its last axis and no negative "
                             f"stride, got strides {strides}")
