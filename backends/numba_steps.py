"""The time loops of one LSTM direction as compiled loops (Numba), for tiny shapes.

Where a step is only a few hundred hidden units, the NumPy time loop costs about a dozen
calls of ~1 us each per step, far more than its arithmetic. ``forward_steps`` runs every
step of a direction's forward in one call, ``backward_steps`` every step of a block of
backward. Forward, per step t (in visiting order):

    a_t += h_prev W_hh^T                    (a_t holds x_t W_ih^T + b on entry)
    i, f, o = sigma(a_i, a_f, a_o)    g = tanh(a_g)      sigma(a) = 1 / (1 + exp(-a))
    c_t = f c_prev + i g              h_t = o tanh(c_t)
    c_t, h_t = c_prev, h_prev         where hold[t, b]  (a padded step)

with the activated gates left in ``gates`` for backward, exactly what
``Backend.lstm_forward_steps`` specifies; backward, what ``Backend.lstm_backward_steps``
specifies. exp overflows to inf for a < -88 (float32) or
-709 (float64), and 1 / (1 + inf) = 0 is the exact limit; compiled code raises no floating-
point warnings. The bits differ from the NumPy path's (other exp, tanh and summation order),
so which one runs depends on the shape only (NumpyBackend.jit_max_units).

Importing this module needs numba (the ``jit`` extra); it compiles on first use and caches
the machine code on disk where numba finds a writable place (next to this file, or the
user's cache folder), else compiles in every process.
"""

from __future__ import annotations

import math

import numba


def _compiled(fn):
    """numba.njit with numba's on-disk cache, or without it where numba finds no writable
    place for one (a read-only install and home folder): then it raises at decoration."""
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError:                 # "cannot cache function ...: no locator available"
        return numba.njit(fn)


@_compiled
def forward_steps(gates, h, c, w_t, hold, reverse):   # pragma: no cover (compiled)
    """In place, all T steps. gates (T, B, 4H) pre-activations in, activations out;
    h, c (T+1, B, H) state slots as in lstm_xp.bptt (slot t / t+1 around step t); w_t (H, 4H)
    = W_hh^T, C-contiguous; hold (T, B, 1) bool, or (0, 0, 1) for none; reverse: visit
    T-1 ... 0."""
    T, B, G = gates.shape
    H = G // 4
    held_steps = hold.shape[0] > 0
    for s in range(T):
        t = T - 1 - s if reverse else s
        prev = t + 1 if reverse else t
        cur = t if reverse else t + 1
        a = gates[t]
        for b in range(B):
            for k in range(H):
                h_k = h[prev, b, k]
                for j in range(G):
                    a[b, j] += h_k * w_t[k, j]
            keep = held_steps and hold[t, b, 0]
            for j in range(H):
                i = 1.0 / (1.0 + math.exp(-a[b, j]))
                f = 1.0 / (1.0 + math.exp(-a[b, H + j]))
                g = math.tanh(a[b, 2 * H + j])
                o = 1.0 / (1.0 + math.exp(-a[b, 3 * H + j]))
                a[b, j], a[b, H + j], a[b, 2 * H + j], a[b, 3 * H + j] = i, f, g, o
                if keep:
                    c[cur, b, j] = c[prev, b, j]
                    h[cur, b, j] = h[prev, b, j]
                else:
                    c_new = f * c[prev, b, j] + i * g
                    c[cur, b, j] = c_new
                    h[cur, b, j] = o * math.tanh(c_new)


@_compiled
def backward_steps(factors, alpha, f_keep, dh, dc, w_hh, dy, hold, reverse):  # pragma: no cover
    """In place, the S steps of a block in backward's order (S-1 ... 0, or 0 ... S-1 for a
    reverse direction). factors (S, B, 4H) [k_i k_f k_g k_o] in, da out; alpha, f_keep
    (S, B, H); dh, dc (B, H) C-contiguous, dL/dh_t and dL/dc_t through the next step on entry,
    those of the block's first step's previous state on return; w_hh (4H, H); dy (S, B, H),
    or (0, 0, 0) for none; hold (S, B, 1) bool, or (0, 0, 1) for none. Per step and row:

        dh_t = dh + dy_t        dc_t = dc + dh_t alpha        dc <- dc_t f
        da = [k_i dc_t, k_f dc_t, k_g dc_t, k_o dh_t]
        dh <- da W_hh  (+ dh_t on held rows, whose factors are zero)
    """
    S, B, G = factors.shape
    H = G // 4
    with_dy = dy.shape[0] > 0
    held_steps = hold.shape[0] > 0
    for n in range(S):
        s = n if reverse else S - 1 - n
        da = factors[s]
        for b in range(B):
            keep = held_steps and hold[s, b, 0]
            for j in range(H):
                dh_t = dh[b, j] + dy[s, b, j] if with_dy else dh[b, j]
                dc_t = dc[b, j] + dh_t * alpha[s, b, j]
                da[b, j] *= dc_t
                da[b, H + j] *= dc_t
                da[b, 2 * H + j] *= dc_t
                da[b, 3 * H + j] *= dh_t
                dc[b, j] = dc_t * f_keep[s, b, j]
                dh[b, j] = dh_t if keep else 0.0
            for g in range(G):
                da_g = da[b, g]
                for j in range(H):
                    dh[b, j] += da_g * w_hh[g, j]
