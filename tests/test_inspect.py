"""lstm_xp.inspect.trace against torch autograd on an unrolled loop: the gates and states of
every step, and dL/dh_t, dL/dc_t as ``h_t.grad``/``c_t.grad`` (retain_grad on every state),
float64 to 1e-10, over layers, directions, lengths, proj_size, a nonzero dstate; and the RNN.
The torch side writes the cell's equations out (LSTMCell has no projection), so it shares no
code with lstm-xp."""

import numpy as np
import pytest

from lstm_xp import LSTM, RNN
from lstm_xp.inspect import trace

TOL = dict(rtol=1e-10, atol=1e-12)


def unrolled(torch, layer, x, h0, c0, lengths, dy, dh_n, dc_n):
    """(acts, c, h, dh, dc), each {(k, d): (T, B, .)}, from torch autograd."""
    T, B, _ = x.shape
    L, D = layer.num_layers, layer.num_directions
    P = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    hold = None if lengths is None else \
        torch.tensor(np.arange(T)[:, None, None] >= np.asarray(lengths)[None, :, None])
    inp = torch.tensor(x, requires_grad=True)
    states, acts_all, h_last, c_last = {}, {}, [], []
    for k in range(L):
        outs = []
        for d in range(D):
            sfx = f"l{k}" + ("_reverse" if d else "")
            w_ih, w_hh = P[f"weight_ih_{sfx}"], P[f"weight_hh_{sfx}"]
            b = P[f"bias_ih_{sfx}"] + P[f"bias_hh_{sfx}"]
            w_hr = P.get(f"weight_hr_{sfx}")
            h, c = torch.tensor(h0[k * D + d]), torch.tensor(c0[k * D + d])
            out = [None] * T
            for t in (reversed(range(T)) if d else range(T)):
                a = inp[t] @ w_ih.T + h @ w_hh.T + b
                ai, af, ag, ao = a.chunk(4, dim=1)
                i, f, g, o = ai.sigmoid(), af.sigmoid(), ag.tanh(), ao.sigmoid()
                c_new = f * c + i * g
                if hold is not None:       # c_t first: h_t's path must go through it
                    c_new = torch.where(hold[t], c, c_new)
                h_new = o * c_new.tanh()
                if w_hr is not None:
                    h_new = h_new @ w_hr.T
                acts = torch.cat([i, f, g, o], dim=1)
                if hold is not None:
                    h_new = torch.where(hold[t], h, h_new)
                    acts = torch.where(hold[t], torch.zeros_like(acts), acts)
                c_new.retain_grad()
                h_new.retain_grad()
                states[k, d, t] = (h_new, c_new)
                acts_all[k, d, t] = acts
                h, c = h_new, c_new
                out[t] = h_new if hold is None else torch.where(hold[t], 0.0, h_new)
            outs.append(torch.stack(out))
            h_last.append(h)
            c_last.append(c)
        inp = torch.cat(outs, dim=2)
    loss = (inp * torch.tensor(dy)).sum()
    if dh_n is not None:
        loss = loss + (torch.stack(h_last) * torch.tensor(dh_n)).sum() + \
            (torch.stack(c_last) * torch.tensor(dc_n)).sum()
    loss.backward()
    result = [{}, {}, {}, {}, {}]
    for k in range(L):
        for d in range(D):
            per = [states[k, d, t] for t in range(T)]
            result[0][k, d] = torch.stack([acts_all[k, d, t] for t in range(T)]).detach().numpy()
            result[1][k, d] = torch.stack([s[1] for s in per]).detach().numpy()
            result[2][k, d] = torch.stack([s[0] for s in per]).detach().numpy()
            result[3][k, d] = torch.stack([_grad(s[0]) for s in per]).numpy()
            result[4][k, d] = torch.stack([_grad(s[1]) for s in per]).numpy()
    return result


def _grad(state):
    """A state's .grad; None (nothing downstream used it: c_T without dc_n) is zero."""
    return state.grad if state.grad is not None else state.detach() * 0.0


CASES = [dict(), dict(num_layers=2, bidirectional=True, dstate=True),
         dict(num_layers=2, bidirectional=True, dstate=True, lengths=[6, 3, 1]),
         dict(num_layers=2, proj_size=3, lengths=[6, 4, 2], dstate=True),
         dict(bidirectional=True, batch_first=True, lengths=[2, 6, 5])]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_trace_matches_torch_retain_grad_on_an_unrolled_loop(torch, case, rng):
    case = dict(case)
    lengths, dstate = case.pop("lengths", None), case.pop("dstate", False)
    layer = LSTM(4, 5, dtype="float64", seed=3, **case)
    T, B = 6, 3
    L, D, P = layer.num_layers, layer.num_directions, layer.output_size
    x = rng.standard_normal((T, B, 4))
    h0, c0 = rng.standard_normal((L * D, B, P)) * 0.5, rng.standard_normal((L * D, B, 5)) * 0.5
    dy = rng.standard_normal((T, B, D * P))
    if lengths is not None:
        dy[np.arange(T)[:, None] >= np.asarray(lengths)[None, :]] = 0.0
    dh_n = rng.standard_normal((L * D, B, P)) if dstate else None
    dc_n = rng.standard_normal((L * D, B, 5)) if dstate else None
    want = unrolled(torch, layer, x, h0, c0, lengths, dy, dh_n, dc_n)
    user = (lambda a: np.swapaxes(a, 0, 1)) if case.get("batch_first") else (lambda a: a)
    tr = trace(layer, user(x), (h0, c0), lengths=lengths, dy=user(dy),
               dstate=None if not dstate else (dh_n, dc_n))
    for k in range(L):
        for d in range(D):
            for name, got in zip(("gates", "c", "h", "dh", "dc"),
                                 (tr.gates, tr.c, tr.h, tr.dh, tr.dc)):
                i = ("gates", "c", "h", "dh", "dc").index(name)
                np.testing.assert_allclose(got[k][d], want[i][k, d], err_msg=f"{name}[{k}][{d}]",
                                           **TOL)


def test_rnn_trace_matches_torch(torch, rng):
    layer = RNN(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=1)
    ref = torch.nn.RNN(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    ref.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    T, B = 5, 2
    x, dy = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 8))
    dh_n = rng.standard_normal((4, B, 4))
    P = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    inp, states, last = torch.tensor(x, requires_grad=True), {}, []
    for k in range(2):
        outs = []
        for d in range(2):
            sfx = f"l{k}" + ("_reverse" if d else "")
            h = torch.zeros(B, 4, dtype=torch.float64)
            out = [None] * T
            for t in (reversed(range(T)) if d else range(T)):
                h = (inp[t] @ P[f"weight_ih_{sfx}"].T + P[f"bias_ih_{sfx}"]
                     + h @ P[f"weight_hh_{sfx}"].T + P[f"bias_hh_{sfx}"]).tanh()
                h.retain_grad()
                states[k, d, t] = out[t] = h
            outs.append(torch.stack(out))
            last.append(h)
        inp = torch.cat(outs, dim=2)
    y_ref, _ = ref(torch.tensor(x))
    np.testing.assert_allclose(inp.detach().numpy(), y_ref.detach().numpy(), **TOL)
    ((inp * torch.tensor(dy)).sum() + (torch.stack(last) * torch.tensor(dh_n)).sum()).backward()
    tr = trace(layer, x, dy=dy, dstate=dh_n)
    assert tr.gates is None and tr.c is None and tr.dc is None
    for k in range(2):
        for d in range(2):
            h_want = torch.stack([states[k, d, t] for t in range(T)])
            np.testing.assert_allclose(tr.h[k][d], h_want.detach().numpy(), **TOL)
            np.testing.assert_allclose(tr.dh[k][d], torch.stack(
                [states[k, d, t].grad for t in range(T)]).numpy(), **TOL)


def test_trace_leaves_the_layer_as_it_was(rng):
    """No gradient accumulated, no tape kept, no draw from the dropout generator; dropout
    between layers is left out (the trace equals a dropout-free twin's)."""
    import lstm_xp
    layer = LSTM(3, 4, num_layers=2, dropout=0.5, dtype="float64", seed=0)
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 4))
    layer.forward(x)
    layer.backward(dy)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    lstm_xp.manual_seed(11)
    generator = layer.backend.generator_state()
    tr = trace(layer, x, dy=dy)
    assert trace(layer, x).dh is None
    assert layer.backend.generator_state() == generator
    for k in grads:
        np.testing.assert_array_equal(layer.grads[k], grads[k])
    assert layer._tapes == [] and layer.dropout == 0.5
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(dy)
    tr_plain = trace(LSTM(3, 4, num_layers=2, dtype="float64", seed=0), x, dy=dy)
    for k in range(2):
        np.testing.assert_array_equal(tr.dh[k][0], tr_plain.dh[k][0])
        np.testing.assert_array_equal(tr.gates[k][0], tr_plain.gates[k][0])


def test_trace_refuses_what_it_does_not_cover():
    with pytest.raises(NotImplementedError, match="not the cell variants \\(peephole\\)"):
        trace(LSTM(2, 3, peephole=True), np.zeros((3, 1, 2), "float32"))
    with pytest.raises(TypeError, match="lengths: lstm_xp.RNN takes no lengths"):
        trace(RNN(2, 3), np.zeros((3, 1, 2), "float32"), lengths=[3])
    with pytest.raises(TypeError, match="trace takes an lstm_xp.LSTM or lstm_xp.RNN"):
        trace(object(), None)
