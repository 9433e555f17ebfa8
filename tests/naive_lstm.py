"""A deliberately naive LSTM: one time step at a time, one gate at a time, float64 NumPy.

Written separately from ``lstm_xp`` (no shared code, no fused buffers, no in-place
tricks, textbook sigmoid) so that the fast path has something independent to agree
with. Parameters use PyTorch's names; inputs are time-major (T, B, I). Follows
torch.nn.LSTM's options: no bias parameters means zero biases; a ``weight_hr`` projects
each step's output, h = W_hr (o * tanh(c)); ``masks[k]`` (dropout, given by the caller)
multiplies layer k's output before layer k+1 reads it.
"""

import numpy as np

GATES = ("i", "f", "g", "o")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def split_gates(w, H):
    """PyTorch's stacked (4H, ...) parameter as a dict gate -> (H, ...) block."""
    return {name: w[n * H:(n + 1) * H] for n, name in enumerate(GATES)}


def layer_weights(params, k, d, H):
    sfx = f"l{k}" + ("_reverse" if d else "")
    bias = (params[f"bias_ih_{sfx}"] + params[f"bias_hh_{sfx}"]
            if f"bias_ih_{sfx}" in params else np.zeros(4 * H))
    return {
        "W": split_gates(params[f"weight_ih_{sfx}"], H),
        "U": split_gates(params[f"weight_hh_{sfx}"], H),
        "b": split_gates(bias, H),
        "R": params.get(f"weight_hr_{sfx}"),       # (P, H) projection, or None
    }


def forward(params, x, h0, c0, num_layers, bidirectional, masks=None):
    """Returns y (T, B, D*P), h_n (L*D, B, P), c_n (L*D, B, H) and a per-step record."""
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = c0.shape[-1]
    h_n = np.zeros_like(h0)
    c_n = np.zeros_like(c0)
    record = []
    layer_in = x
    for k in range(num_layers):
        outs = []
        for d in range(D):
            w = layer_weights(params, k, d, H)
            h, c = h0[k * D + d].copy(), c0[k * D + d].copy()
            out = np.zeros((T, B, h.shape[-1]))
            steps = []
            order = range(T - 1, -1, -1) if d else range(T)
            for t in order:
                pre = {n: layer_in[t] @ w["W"][n].T + h @ w["U"][n].T + w["b"][n] for n in GATES}
                i, f, o = sigmoid(pre["i"]), sigmoid(pre["f"]), sigmoid(pre["o"])
                g = np.tanh(pre["g"])
                c_new = f * c + i * g
                m = o * np.tanh(c_new)
                h_new = m if w["R"] is None else m @ w["R"].T
                steps.append(dict(t=t, x=layer_in[t], h_prev=h, c_prev=c, c=c_new,
                                  i=i, f=f, g=g, o=o, m=m))
                h, c = h_new, c_new
                out[t] = h
            h_n[k * D + d], c_n[k * D + d] = h, c
            outs.append(out)
            record.append((k, d, layer_in, steps))
        layer_in = np.concatenate(outs, axis=-1)
        if masks is not None and masks[k] is not None:
            layer_in = layer_in * masks[k]
    return layer_in, h_n, c_n, record


def backward(params, record, dy, dh_n, dc_n, num_layers, bidirectional, input_size,
             masks=None):
    """Gradients of L given dL/dy, dL/dh_n, dL/dc_n (arrays; zeros for absent ones)."""
    D = 2 if bidirectional else 1
    H = dc_n.shape[-1]
    grads = {name: np.zeros_like(v) for name, v in params.items()}
    dh0, dc0 = np.zeros_like(dh_n), np.zeros_like(dc_n)
    by_layer = {(k, d): (layer_in, steps) for k, d, layer_in, steps in record}
    d_out = dy
    for k in reversed(range(num_layers)):
        if masks is not None and masks[k] is not None:
            d_out = d_out * masks[k]
        layer_in = by_layer[(k, 0)][0]
        d_in = np.zeros_like(layer_in)
        for d in range(D):
            _, steps = by_layer[(k, d)]
            w = layer_weights(params, k, d, H)
            sfx = f"l{k}" + ("_reverse" if d else "")
            dW = {n: np.zeros_like(w["W"][n]) for n in GATES}
            dU = {n: np.zeros_like(w["U"][n]) for n in GATES}
            db = {n: np.zeros(H) for n in GATES}
            dR = None if w["R"] is None else np.zeros_like(w["R"])
            dh = dh_n[k * D + d].copy()
            dc = dc_n[k * D + d].copy()
            P = dh.shape[-1]
            for s in reversed(steps):
                dh = dh + d_out[s["t"], :, d * P:(d + 1) * P]
                if w["R"] is None:
                    dm = dh
                else:                          # h = m R^T
                    dR += dh.T @ s["m"]
                    dm = dh @ w["R"]
                tanh_c = np.tanh(s["c"])
                do = dm * tanh_c
                dc = dc + dm * s["o"] * (1 - tanh_c ** 2)
                di = dc * s["g"]
                dg = dc * s["i"]
                df = dc * s["c_prev"]
                dpre = {
                    "i": di * s["i"] * (1 - s["i"]),
                    "f": df * s["f"] * (1 - s["f"]),
                    "g": dg * (1 - s["g"] ** 2),
                    "o": do * s["o"] * (1 - s["o"]),
                }
                dh = np.zeros_like(dh)
                for n in GATES:
                    dW[n] += dpre[n].T @ s["x"]
                    dU[n] += dpre[n].T @ s["h_prev"]
                    db[n] += dpre[n].sum(axis=0)
                    d_in[s["t"]] += dpre[n] @ w["W"][n]
                    dh += dpre[n] @ w["U"][n]
                dc = dc * s["f"]
            dh0[k * D + d], dc0[k * D + d] = dh, dc
            grads[f"weight_ih_{sfx}"] = np.concatenate([dW[n] for n in GATES])
            grads[f"weight_hh_{sfx}"] = np.concatenate([dU[n] for n in GATES])
            if f"bias_ih_{sfx}" in params:
                grads[f"bias_ih_{sfx}"] = np.concatenate([db[n] for n in GATES])
                grads[f"bias_hh_{sfx}"] = grads[f"bias_ih_{sfx}"].copy()
            if dR is not None:
                grads[f"weight_hr_{sfx}"] = dR
        d_out = d_in
    return d_out, dh0, dc0, grads


def forward_backward_padded(params, x, lengths, h0, c0, dy, dh_n, dc_n, num_layers,
                            bidirectional):
    """Padded-batch semantics, the naive way: each sequence run alone on its own steps.

    x (T, B, I), lengths (B,); returns y (T, B, D*H) zero past each length, h_n, c_n,
    dx (zero past each length), dh0, dc0 and the parameter gradients summed over sequences.
    """
    T, B, I = x.shape
    D = 2 if bidirectional else 1
    H = h0.shape[-1]
    y = np.zeros((T, B, D * H))
    dx = np.zeros_like(x)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    dh0, dc0 = np.zeros_like(h0), np.zeros_like(c0)
    grads = {name: np.zeros_like(v) for name, v in params.items()}
    for b in range(B):
        n = int(lengths[b])
        one = slice(b, b + 1)
        yb, hb, cb, record = forward(params, x[:n, one], h0[:, one], c0[:, one],
                                     num_layers, bidirectional)
        y[:n, one], h_n[:, one], c_n[:, one] = yb, hb, cb
        dxb, dhb, dcb, gb = backward(params, record, dy[:n, one], dh_n[:, one], dc_n[:, one],
                                     num_layers, bidirectional, I)
        dx[:n, one], dh0[:, one], dc0[:, one] = dxb, dhb, dcb
        for name in grads:
            grads[name] += gb[name]
    return y, h_n, c_n, dx, dh0, dc0, grads
