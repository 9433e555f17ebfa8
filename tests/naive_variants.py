"""A deliberately naive reference for the cell variants: one step, one gate at a time.

Written from the equations in the issue and lstm_xp/cell_variants.py's docstring, sharing no
code with lstm_xp: per gate weight blocks, textbook sigmoid, layer norm spelled out, masks
given by the caller (the ones lstm_xp drew). Works on complex arrays, so its gradient can be
taken by the complex step, f'(x) = Im f(x + i h) / h with h = 1e-30 (exact to rounding,
no cancellation): that is the reference backward, independent of lstm_xp's hand-written one.
Time-major (T, B, I); ``lengths`` right-padded as lstm_xp's.
"""

import numpy as np

GATES = ("i", "f", "g", "o")
EPS = 1e-5


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def layer_norm(z, weight, bias=0.0):
    mean = z.mean(axis=-1, keepdims=True)
    var = ((z - mean) ** 2).mean(axis=-1, keepdims=True)
    return weight * (z - mean) / np.sqrt(var + EPS) + bias


def blocks(w, H):
    return {name: w[n * H:(n + 1) * H] for n, name in enumerate(GATES)}


def forward(params, x, h0, c0, num_layers, bidirectional, opts, masks, training, lengths=None):
    """y (T, B, D*H), h_n, c_n (L*D, B, H). ``opts``: dict of the LSTM options (peephole,
    layer_norm, zoneout=(p_c, p_h)); ``masks[(k, d)]``: dict with "recurrent" (B, H),
    "weight" (4H, H), "zone_c"/"zone_h" (T, B, H), each optional."""
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = c0.shape[-1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h_n = np.zeros(h0.shape, dtype=np.result_type(x, h0, c0, *params.values()))
    c_n = np.zeros_like(h_n)
    layer_in = x
    for k in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"l{k}" + ("_reverse" if d else "")
            mk = masks.get((k, d), {})
            U_full = params[f"weight_hh_{sfx}"] * mk.get("weight", 1.0)
            W, U = blocks(params[f"weight_ih_{sfx}"], H), blocks(U_full, H)
            b = blocks(params[f"bias_ih_{sfx}"] + params[f"bias_hh_{sfx}"], H)
            h, c = h0[k * D + d], c0[k * D + d]
            out = np.zeros((T, B, H), dtype=h_n.dtype)
            for t in (range(T - 1, -1, -1) if d else range(T)):
                h_in = h * mk.get("recurrent", 1.0)
                x_part = np.concatenate([layer_in[t] @ W[n].T for n in GATES], axis=-1)
                h_part = np.concatenate([h_in @ U[n].T for n in GATES], axis=-1)
                if opts.get("layer_norm"):
                    x_part = layer_norm(x_part, params[f"ln_ih_weight_{sfx}"])
                    h_part = layer_norm(h_part, params[f"ln_hh_weight_{sfx}"])
                pre = {n: x_part[:, j * H:(j + 1) * H] + h_part[:, j * H:(j + 1) * H] + b[n]
                       for j, n in enumerate(GATES)}
                if opts.get("peephole"):
                    i = sigmoid(pre["i"] + params[f"weight_ci_{sfx}"] * c)
                    f = sigmoid(pre["f"] + params[f"weight_cf_{sfx}"] * c)
                else:
                    i, f = sigmoid(pre["i"]), sigmoid(pre["f"])
                g = np.tanh(pre["g"])
                c_tilde = f * c + i * g
                if opts.get("peephole"):
                    o = sigmoid(pre["o"] + params[f"weight_co_{sfx}"] * c_tilde)
                else:
                    o = sigmoid(pre["o"])
                if opts.get("layer_norm"):
                    h_tilde = o * np.tanh(layer_norm(c_tilde, params[f"ln_c_weight_{sfx}"],
                                                     params[f"ln_c_bias_{sfx}"]))
                else:
                    h_tilde = o * np.tanh(c_tilde)
                p_c, p_h = opts.get("zoneout", (0.0, 0.0))
                if p_c or p_h:
                    k_c = mk["zone_c"][t] if training else p_c
                    k_h = mk["zone_h"][t] if training else p_h
                    c_new = k_c * c + (1 - k_c) * c_tilde
                    h_new = k_h * h + (1 - k_h) * h_tilde
                else:
                    c_new, h_new = c_tilde, h_tilde
                live = (t < lengths)[:, None]
                h, c = np.where(live, h_new, h), np.where(live, c_new, c)
                out[t] = np.where(live, h, 0.0)
            h_n[k * D + d], c_n[k * D + d] = h, c
            outs.append(out)
        layer_in = np.concatenate(outs, axis=-1)
    return layer_in, h_n, c_n


def complex_step_gradients(loss, arrays: dict, h=1e-30) -> dict:
    """dloss/da for each array in ``arrays`` (name -> float64 array), by the complex step:
    ``loss(values)`` gets the dict with one entry perturbed by i h and returns a complex."""
    grads = {}
    for name, a in arrays.items():
        g = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            values = dict(arrays)
            values[name] = a.astype(complex)
            values[name][idx] += 1j * h
            g[idx] = loss(values).imag / h
        grads[name] = g
    return grads
