"""LSTM cell variants through time: peephole, layer norm, zoneout, recurrent dropout,
weight drop -- one direction of one layer, forward and backpropagation through time.

Written once in generic ``xp`` code (no fused primitives), so it runs unchanged on NumPy,
CuPy and any array API library; the plain cell keeps its fused path (``lstm_xp.bptt``) and
``LSTM`` comes here only when a variant is on. Notation as in ``lstm_xp.bptt``: T steps,
B batch, I inputs, H hidden units; P_t = x_t W_ih^T, r_t = (m * h_{t-1}) W^T with
W = M * W_hh (the recurrent product). The step, every option combined:

    a    = LN(P_t; g_ih) + LN(r_t; g_hh) + b_ih + b_hh     (layer_norm; else P_t + r_t + b)
    i    = sigma(a_i + w_ci c_{t-1})      f = sigma(a_f + w_cf c_{t-1})      (peephole)
    g    = tanh(a_g)
    c~   = f c_{t-1} + i g
    o    = sigma(a_o + w_co c~)                                              (peephole)
    n    = LN(c~; g_c, beta_c)            (layer_norm; else n = c~)
    h~   = o tanh(n)
    c_t  = k_c c_{t-1} + (1 - k_c) c~     h_t = k_h h_{t-1} + (1 - k_h) h~    (zoneout)

LN(z; w, b) = w (z - mean z) / sqrt(var z + 1e-5) + b over the feature axis (biased var).
Zoneout's k are per-element, per-step Bernoulli(p) draws in training and the constants
p_c, p_h in eval mode; recurrent dropout's m (B, H) and weight drop's M (4H, H) are
inverted-dropout masks drawn once per forward call (1 in eval mode). Padded steps keep the
state, c_t = c_{t-1}, h_t = h_{t-1}, exactly (as the plain path).

Backward, per step (visited in reverse), from dh_t = dh + dy_t and dc = dL/dc_t through
step t+1 (both zeroed on padded rows, which pass them to step t-1 unchanged):

    dh~ = (1 - k_h) dh_t                  dc~ = (1 - k_c) dc       (zoneout; else dh_t, dc)
    do  = dh~ tanh(n)                     dn  = dh~ o (1 - tanh(n)^2)
    dc~ += LN'(dn g_c)                    (layer_norm; else dc~ += dn)
    da_o = do o (1 - o)                   dc~ += da_o w_co                 (peephole)
    da_i = dc~ g i (1 - i)    da_f = dc~ c_{t-1} f (1 - f)    da_g = dc~ i (1 - g^2)
    dc_{t-1} = dc~ f + da_i w_ci + da_f w_cf + k_c dc
    dr  = LN'(da g_hh)                    (layer_norm; else dr = da)
    dh_{t-1} = m * (dr W) + k_h dh_t

where LN'(dy) = (dy - mean dy - z^ mean(dy z^)) / sqrt(var z + 1e-5) is the gradient through
the normalisation z -> z^. After the loop, over all steps at once:

    dW_hh = M * sum_t dr_t^T (m * h_{t-1})      db_ih = db_hh = sum_t da_t
    dP    = LN'(da g_ih) (else da)              dW_ih = sum_t dP_t^T x_t     dx_t = dP_t W_ih
    dg_ih = sum da P^_t   dg_hh = sum da r^_t   dg_c = sum dn n^   dbeta_c = sum dn
    dw_ci = sum da_i c_{t-1}   dw_cf = sum da_f c_{t-1}   dw_co = sum da_o c~
"""

from __future__ import annotations

from dataclasses import dataclass

from .bptt import DirectionTape

LN_EPS = 1e-5


@dataclass(frozen=True)
class CellOptions:
    """Which variants are on (``LSTM``'s options of the same names, validated there)."""

    peephole: bool = False
    layer_norm: bool = False
    zoneout: tuple = (0.0, 0.0)         # (p_c, p_h)
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0

    def active(self) -> list:
        """The names of the options that are on, in declaration order."""
        return [name for name, value in vars(self).items()
                if (any(value) if isinstance(value, tuple) else value)]

    @property
    def plain(self) -> bool:
        """Whether this is the plain cell (the fused path applies)."""
        return not self.active()


@dataclass
class VariantTape(DirectionTape):
    """A :class:`DirectionTape` plus what the variants' backward needs.

    Attributes (shapes): gates (T, B, 4H) activations [i f g o]; c_tilde, tanh_n (T, B, H);
    with layer_norm the normalised values and inverse deviations: pre_hat (T, B, 4H),
    pre_inv (T, B, 1), r_hat (T, B, 4H), r_inv (T, B, 1), n_hat (T, B, H), n_inv (T, B, 1);
    masks: {"recurrent": (B, H), "weight": (4H, H), "zone_c", "zone_h": (T, B, H)} as drawn
    (absent when off or in eval mode); keep: (k_c, k_h) as used (arrays or floats) or None.
    """

    c_tilde: object = None
    tanh_n: object = None
    pre_hat: object = None
    pre_inv: object = None
    r_hat: object = None
    r_inv: object = None
    n_hat: object = None
    n_inv: object = None
    masks: dict = None
    keep: tuple = None
    w_eff: object = None

    def keep_at(self, t: int) -> tuple:
        """Zoneout's (k_c, k_h) at step t: the drawn masks' rows, or eval mode's constants."""
        return tuple(k[t, ...] if hasattr(k, "shape") else k for k in self.keep)


def _sigmoid(xp, a):
    return 0.5 * xp.tanh(0.5 * a) + 0.5


def layer_norm(xp, z):
    """(z^, 1/s): z^ = (z - mean z) / s, s = sqrt(var z + 1e-5), over the last axis."""
    centered = z - xp.mean(z, axis=-1, keepdims=True)
    inv = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=-1, keepdims=True) + LN_EPS)
    return centered * inv, inv


def layer_norm_backward(xp, dz_hat, z_hat, inv):
    """dL/dz from dL/dz^ through z^ = (z - mean z) / s (see :func:`layer_norm`)."""
    return inv * (dz_hat - xp.mean(dz_hat, axis=-1, keepdims=True)
                  - z_hat * xp.mean(dz_hat * z_hat, axis=-1, keepdims=True))


def _gates(a, H):
    return a[..., 0:H], a[..., H:2 * H], a[..., 2 * H:3 * H], a[..., 3 * H:4 * H]


def variant_forward(backend, x, p: dict, h0, c0, reverse: bool, hold, opts: CellOptions,
                    masks: dict, training: bool) -> VariantTape:
    """One direction over the sequence with the variants of ``opts``.

    Args:
        x: (T, B, I) C-contiguous. p: this layer-direction's arrays by key (w_ih (4H, I),
            w_hh (4H, H), b_ih, b_hh (4H,) or absent; w_ci, w_cf, w_co (H,) with peephole;
            ln_ih, ln_hh (4H,), ln_c_w, ln_c_b (H,) with layer_norm).
        h0, c0: (B, H). hold: (T, B, 1) bool or None (padded steps).
        masks: as :class:`VariantTape`'s, drawn by the caller (training mode only).
        training: zoneout draws (masks) in training, its expectation in eval mode.
    """
    xp = backend.xp
    T, B, I = x.shape
    H = p["w_hh"].shape[0] // 4
    dtype = x.dtype
    w_eff = p["w_hh"] if masks.get("weight") is None else p["w_hh"] * masks["weight"]
    pre = xp.reshape(xp.matmul(xp.reshape(x, (T * B, I)), p["w_ih"].T), (T, B, 4 * H))
    tape = VariantTape(x=x, gates=backend.empty((T, B, 4 * H), dtype), reverse=reverse,
                       h=backend.empty((T + 1, B, H), dtype),
                       c=backend.empty((T + 1, B, H), dtype), hold=hold,
                       c_tilde=backend.empty((T, B, H), dtype),
                       tanh_n=backend.empty((T, B, H), dtype), masks=masks, w_eff=w_eff)
    if opts.layer_norm:
        tape.pre_hat, tape.pre_inv = layer_norm(xp, pre)
        base = tape.pre_hat * p["ln_ih"]
        tape.r_hat = backend.empty((T, B, 4 * H), dtype)
        tape.r_inv = backend.empty((T, B, 1), dtype)
        tape.n_hat = backend.empty((T, B, H), dtype)
        tape.n_inv = backend.empty((T, B, 1), dtype)
    else:
        base = pre
    if "b_ih" in p:
        base = base + (p["b_ih"] + p["b_hh"])
    if any(opts.zoneout):
        tape.keep = ((masks["zone_c"], masks["zone_h"]) if training else opts.zoneout)
    h, c = tape.h, tape.c
    prev, cur = tape.slot_offsets()
    first = T if reverse else 0
    h[first, ...] = h0
    c[first, ...] = c0
    m = masks.get("recurrent")
    w_eff_t = backend.transposed_operand(w_eff)
    for t in tape.time_order():
        hp, cp = h[t + prev, ...], c[t + prev, ...]
        r = xp.matmul(hp if m is None else hp * m, w_eff_t)
        if opts.layer_norm:
            r_hat, r_inv = layer_norm(xp, r)
            tape.r_hat[t, ...], tape.r_inv[t, ...] = r_hat, r_inv
            r = r_hat * p["ln_hh"]
        a_i, a_f, a_g, a_o = _gates(base[t, ...] + r, H)
        if opts.peephole:
            a_i, a_f = a_i + p["w_ci"] * cp, a_f + p["w_cf"] * cp
        i, f, g = _sigmoid(xp, a_i), _sigmoid(xp, a_f), xp.tanh(a_g)
        c_tilde = f * cp + i * g
        o = _sigmoid(xp, a_o + p["w_co"] * c_tilde if opts.peephole else a_o)
        if opts.layer_norm:
            n_hat, n_inv = layer_norm(xp, c_tilde)
            tape.n_hat[t, ...], tape.n_inv[t, ...] = n_hat, n_inv
            tanh_n = xp.tanh(n_hat * p["ln_c_w"] + p["ln_c_b"])
        else:
            tanh_n = xp.tanh(c_tilde)
        h_tilde = o * tanh_n
        for slot, value in enumerate((i, f, g, o)):
            tape.gates[t, :, slot * H:(slot + 1) * H] = value
        tape.c_tilde[t, ...], tape.tanh_n[t, ...] = c_tilde, tanh_n
        if tape.keep is not None:
            k_c, k_h = tape.keep_at(t)
            c_new, h_new = k_c * cp + (1 - k_c) * c_tilde, k_h * hp + (1 - k_h) * h_tilde
        else:
            c_new, h_new = c_tilde, h_tilde
        if hold is not None:
            c_new = xp.where(hold[t, ...], cp, c_new)
            h_new = xp.where(hold[t, ...], hp, h_new)
        c[t + cur, ...], h[t + cur, ...] = c_new, h_new
    return tape


def variant_backward(backend, tape: VariantTape, p: dict, opts: CellOptions, dy, dh_n, dc_n,
                     grads: dict, dx, accumulate_dx: bool):
    """Backpropagate one direction of :func:`variant_forward` (see the module docstring).

    dy: (T, B, H) or None; dh_n, dc_n: (B, H) or None. Adds to ``grads`` (the keys of
    ``p``); writes dL/dx into ``dx`` (T, B, I), adding to it if ``accumulate_dx``.
    Returns (dh0, dc0), each (B, H).
    """
    xp = backend.xp
    T, B, I = tape.x.shape
    H = tape.c.shape[-1]
    dtype = tape.x.dtype
    prev, cur = tape.slot_offsets()
    hold, m = tape.hold, tape.masks.get("recurrent")
    dh = backend.zeros((B, H), dtype) if dh_n is None else dh_n
    dc = backend.zeros((B, H), dtype) if dc_n is None else dc_n
    da = backend.empty((T, B, 4 * H), dtype)
    dr_all = backend.empty((T, B, 4 * H), dtype) if opts.layer_norm else da
    dn_all = backend.empty((T, B, H), dtype) if opts.layer_norm else None
    if hold is not None:
        valid = xp.astype(xp.logical_not(hold), dtype)
    for t in reversed(tape.time_order()):
        dh_t = dh if dy is None else dh + dy[t, ...]
        dh_cell, dc_cell = ((dh_t, dc) if hold is None
                            else (dh_t * valid[t, ...], dc * valid[t, ...]))
        if tape.keep is not None:
            k_c, k_h = tape.keep_at(t)
            dh_tilde, dc_tilde = (1 - k_h) * dh_cell, (1 - k_c) * dc_cell
        else:
            dh_tilde, dc_tilde = dh_cell, dc_cell
        i, f, g, o = _gates(tape.gates[t, ...], H)
        tanh_n, cp = tape.tanh_n[t, ...], tape.c[t + prev, ...]
        do = dh_tilde * tanh_n
        dn = dh_tilde * o * (1 - tanh_n * tanh_n)
        if opts.layer_norm:
            dn_all[t, ...] = dn
            dc_tilde = dc_tilde + layer_norm_backward(xp, dn * p["ln_c_w"], tape.n_hat[t, ...],
                                                      tape.n_inv[t, ...])
        else:
            dc_tilde = dc_tilde + dn
        da_o = do * o * (1 - o)
        if opts.peephole:
            dc_tilde = dc_tilde + da_o * p["w_co"]
        da_i = dc_tilde * g * i * (1 - i)
        da_f = dc_tilde * cp * f * (1 - f)
        da_g = dc_tilde * i * (1 - g * g)
        dc_prev = dc_tilde * f
        if opts.peephole:
            dc_prev = dc_prev + da_i * p["w_ci"] + da_f * p["w_cf"]
        for slot, value in enumerate((da_i, da_f, da_g, da_o)):
            da[t, :, slot * H:(slot + 1) * H] = value
        if opts.layer_norm:
            dr_all[t, ...] = layer_norm_backward(xp, da[t, ...] * p["ln_hh"],
                                                 tape.r_hat[t, ...], tape.r_inv[t, ...])
        dh_prev = xp.matmul(dr_all[t, ...], tape.w_eff)
        if m is not None:
            dh_prev = dh_prev * m
        if tape.keep is not None:
            dh_prev, dc_prev = dh_prev + k_h * dh_cell, dc_prev + k_c * dc_cell
        if hold is not None:         # padded rows hand dh_t and dc on unchanged
            dh_prev = dh_prev + (1 - valid[t, ...]) * dh_t
            dc_prev = dc_prev + (1 - valid[t, ...]) * dc
        dh, dc = dh_prev, dc_prev
    h_in = tape.previous_h() if m is None else tape.previous_h() * m
    dw = xp.matmul(xp.permute_dims(xp.reshape(dr_all, (T * B, 4 * H)), (1, 0)),
                   xp.reshape(h_in, (T * B, H)))
    grads["w_hh"] += dw if tape.masks.get("weight") is None else dw * tape.masks["weight"]
    if "b_ih" in grads:
        db = xp.sum(xp.reshape(da, (T * B, 4 * H)), axis=0)
        grads["b_ih"] += db
        grads["b_hh"] += db
    if opts.layer_norm:
        grads["ln_hh"] += xp.sum(da * tape.r_hat, axis=(0, 1))
        grads["ln_c_w"] += xp.sum(dn_all * tape.n_hat, axis=(0, 1))
        grads["ln_c_b"] += xp.sum(dn_all, axis=(0, 1))
        grads["ln_ih"] += xp.sum(da * tape.pre_hat, axis=(0, 1))
        d_pre = layer_norm_backward(xp, da * p["ln_ih"], tape.pre_hat, tape.pre_inv)
    else:
        d_pre = da
    if opts.peephole:
        c_prev = tape.c[prev:prev + T, ...]
        d_i, d_f, _, d_o = _gates(da, H)
        grads["w_ci"] += xp.sum(d_i * c_prev, axis=(0, 1))
        grads["w_cf"] += xp.sum(d_f * c_prev, axis=(0, 1))
        grads["w_co"] += xp.sum(d_o * tape.c_tilde, axis=(0, 1))
    d_pre2 = xp.reshape(d_pre, (T * B, 4 * H))
    grads["w_ih"] += xp.matmul(xp.permute_dims(d_pre2, (1, 0)), xp.reshape(tape.x, (T * B, I)))
    dx2 = xp.reshape(dx, (T * B, I))
    (backend.matmul_acc if accumulate_dx else backend.matmul_into)(d_pre2, p["w_ih"], out=dx2)
    return dh, dc
