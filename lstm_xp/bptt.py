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
GEMMs / reductions over all steps.

Padded batches (sequences of different lengths, right-padded to T): a (T, B, 1) boolean
``hold`` marks the padded steps (t >= length of sequence b). There the cell's result is
discarded and the state is carried through unchanged,

    h_t = h_prev,  c_t = c_prev   where hold[t, b]     (an exact select, no arithmetic)

so a reverse direction starts from h0 at each sequence's own last step, h_n/c_n are each
sequence's state at its own last step, and in backward the gradients pass straight through
padded steps (dh_prev = dh_t, dc_prev = dc_t) while their gate gradients are zero: padded
steps contribute nothing to any weight, bias or input gradient. The price, on this path
only: two selects per forward step; one copy and one select per backward step, plus
four masking passes per block of steps (see direction_backward).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DirectionTape:
    """What one direction's forward keeps for its backward.

    Attributes:
        x: (T, B, I) the layer input.
        gates: (T, B, 4H) activated gates [i f g o] (overwritten by backward).
        h, c: (T+1, B, H) states, the initial one included (see module docstring).
        reverse: whether this direction runs from t = T-1 down to 0.
        hold: (T, B, 1) bool, True at padded steps; None when every sequence has T steps.
    """

    x: object
    gates: object
    h: object
    c: object
    reverse: bool
    hold: object = None

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
                      hold=None) -> DirectionTape:
    """Run one direction over the whole sequence.

    Args:
        x: (T, B, I) C-contiguous input. w_ih (4H, I), w_hh (4H, H), b_ih, b_hh (4H,).
        h0, c0: (B, H) initial state.
        reverse: visit t = T-1 ... 0 instead of 0 ... T-1.
        hold: (T, B, 1) bool marking padded steps, or None (see module docstring).

    Returns:
        The tape: outputs, final state and everything backward needs.
    """
    xp = backend.xp
    T, B, I = x.shape
    H = w_hh.shape[1]
    # a_t = x_t W_ih^T + (b_ih + b_hh) for all t at once; h_prev W_hh^T is added per step
    gates = xp.reshape(xp.matmul(xp.reshape(x, (T * B, I)), w_ih.T), (T, B, 4 * H))
    gates += b_ih + b_hh
    h = backend.empty((T + 1, B, H), x.dtype)
    c = backend.empty((T + 1, B, H), x.dtype)
    tape = DirectionTape(x=x, gates=gates, h=h, c=c, reverse=reverse, hold=hold)
    prev, cur = tape.slot_offsets()
    first = T if reverse else 0
    h[first, ...] = h0
    c[first, ...] = c0
    w_hh_t = w_hh.T
    for t in tape.time_order():
        gates_t = gates[t, ...]
        backend.matmul_acc(h[t + prev, ...], w_hh_t, out=gates_t)
        backend.lstm_cell_forward(gates_t, c[t + prev, ...], c[t + cur, ...], h[t + cur, ...])
        if hold is not None:
            backend.keep_where(h[t + cur, ...], h[t + prev, ...], hold[t, ...])
            backend.keep_where(c[t + cur, ...], c[t + prev, ...], hold[t, ...])
    return tape


def direction_backward(backend, tape: DirectionTape, w_ih, w_hh, dy, dh_n, dc_n,
                       grads: dict, dx, accumulate_dx: bool):
    """Backpropagate one direction through time; consumes ``tape`` (its gates are overwritten).

    Args:
        tape: from :func:`direction_forward`.
        w_ih, w_hh: the weights forward used.
        dy: (T, B, H) dL/d(outputs) of this direction (any strides) or None for zeros;
            zero at padded steps when the tape has ``hold``.
        dh_n, dc_n: (B, H) dL/dh_n and dL/dc_n, or None for zeros.
        grads: dict with arrays "w_ih" (4H, I), "w_hh" (4H, H), "b_ih", "b_hh" (4H,),
            overwritten with this direction's parameter gradients.
        dx: (T, B, I) C-contiguous array receiving dL/dx, added to it if ``accumulate_dx``.

    Returns:
        (dh0, dc0), each (B, H): gradients of the initial state.

    Steps are visited in the reverse of forward's order, in blocks of S steps. For each
    block the local derivatives (alpha, k, f; see Backend.lstm_backward_factors) are
    computed at once from the saved activations; then per step t, with dh_t the gradient
    of h_t through both the output and the next step, and dc the gradient of c_t through
    the next step:

        dh_t  = dy_t + da_{next} W_hh               (carried in ``dh``)
        dc_t  = dc + dh_t * alpha_t
        da_t  = [dc_t k_i, dc_t k_f, dc_t k_g, dh_t k_o]      dc <- dc_t * f_t
    and after the loop, over all steps at once:

        dW_ih = sum_t da_t^T x_t      dW_hh = sum_t da_t^T h_prev(t)
        db_ih = db_hh = sum_t da_t    dx_t  = da_t W_ih

    At padded steps the factors are alpha = 0, k = 0, f = 1, so dc passes through
    unchanged and da_t = 0; dh is put aside before the GEMM and restored after it.
    """
    xp = backend.xp
    T, B, I = tape.x.shape
    H = w_hh.shape[1]
    dtype = tape.x.dtype
    gates, c, hold = tape.gates, tape.c, tape.hold
    prev, cur = tape.slot_offsets()
    dh, dc = backend.zeros((B, H), dtype), backend.zeros((B, H), dtype)   # C-contiguous
    if dh_n is not None:
        dh[...] = dh_n
    if dc_n is not None:
        dc[...] = dc_n
    S = backend.backward_block_steps(T, B, H, xp.finfo(dtype).bits // 8)
    alpha, f_gate = backend.empty((S, B, H), dtype), backend.empty((S, B, H), dtype)
    if hold is not None:        # dy must already be zero at padded steps (LSTM.backward)
        padded = xp.astype(hold, dtype)                    # (T, B, 1): 1 padding, 0 real step
        valid = xp.astype(xp.logical_not(hold), dtype)     # (T, B, 1): 1 real step, 0 padding
        dh_held = backend.empty((B, H), dtype)
    visits = list(reversed(tape.time_order()))
    for first in range(0, T, S):
        block = visits[first:first + S]
        lo, n_steps = min(block), len(block)
        hi = lo + n_steps                          # the block covers times lo ... hi - 1
        backend.lstm_backward_factors(gates[lo:hi, ...], c[lo + prev:hi + prev, ...],
                                      c[lo + cur:hi + cur, ...], alpha[:n_steps, ...],
                                      f_gate[:n_steps, ...])
        if hold is not None:    # padded steps: k = 0, alpha = 0, f = f * 0 + 1 = 1 (exact)
            gates[lo:hi, ...] *= valid[lo:hi, ...]
            alpha[:n_steps, ...] *= valid[lo:hi, ...]
            f_gate[:n_steps, ...] *= valid[lo:hi, ...]
            f_gate[:n_steps, ...] += padded[lo:hi, ...]
        for t in block:
            if dy is not None:
                dh += dy[t, ...]
            gates_t = gates[t, ...]                     # factors k_t in, da_t out
            backend.lstm_cell_backward_step(gates_t, alpha[t - lo, ...], f_gate[t - lo, ...],
                                            dh, dc)
            if hold is not None:
                dh_held[...] = dh
            backend.matmul_into(gates_t, w_hh, out=dh)  # dL/dh_prev through this step
            if hold is not None:    # padded rows pass dh straight through
                backend.keep_where(dh, dh_held, hold[t, ...])
    da = xp.reshape(gates, (T * B, 4 * H))
    backend.matmul_into(da.T, xp.reshape(tape.x, (T * B, I)), out=grads["w_ih"])
    backend.matmul_into(da.T, xp.reshape(tape.previous_h(), (T * B, H)), out=grads["w_hh"])
    db = xp.sum(da, axis=0)
    grads["b_ih"][...] = db
    grads["b_hh"][...] = db
    dx2 = xp.reshape(dx, (T * B, I))
    (backend.matmul_acc if accumulate_dx else backend.matmul_into)(da, w_ih, out=dx2)
    return dh, dc
