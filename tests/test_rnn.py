"""lstm_xp.RNN, the plain RNN beside the LSTM: torch.nn.RNN to 1e-10 in float64 (tanh and
relu, 2 layers, bidirectional, batch_first, h0, dh_n), central differences, the strict
backend, and its argument checks."""

import numpy as np
import pytest

from cases import numeric_gradient
from lstm_xp import RNN

CASES = [dict(nonlinearity="tanh"), dict(nonlinearity="relu"),
         dict(nonlinearity="tanh", num_layers=2, bidirectional=True),
         dict(nonlinearity="relu", num_layers=2, bidirectional=True, batch_first=True),
         dict(nonlinearity="tanh", num_layers=3, bias=False)]


def _problem(rng, kw, T=6, B=3, I=4, H=5):
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    x = rng.standard_normal((B, T, I) if kw.get("batch_first") else (T, B, I))
    h0 = rng.standard_normal((L * D, B, H)) * 0.5
    dy = rng.standard_normal((B, T, D * H) if kw.get("batch_first") else (T, B, D * H))
    dh_n = rng.standard_normal((L * D, B, H))
    return x, h0, dy, dh_n


@pytest.mark.parametrize("kw", CASES, ids=str)
def test_rnn_matches_torch_to_1e10(torch, kw, rng):
    ref = torch.nn.RNN(4, 5, dtype=torch.float64, **kw)
    ours = RNN(4, 5, dtype="float64", **kw)
    ours.load_params({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert set(ours.params) == set(ref.state_dict())
    x, h0, dy, dh_n = _problem(rng, kw)
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    y_t, hn_t = ref(xt, ht)
    loss = (y_t * torch.tensor(dy)).sum() + (hn_t * torch.tensor(dh_n)).sum()
    names = [n for n, _ in ref.named_parameters()]
    grads = torch.autograd.grad(loss, [xt, ht] + [p for _, p in ref.named_parameters()])
    y, h_n = ours.forward(x, h0)
    dx, dh0 = ours.backward(dy, dh_n)
    want = {"y": y_t, "h_n": hn_t, "dx": grads[0], "dh0": grads[1],
            **{f"grad:{n}": g for n, g in zip(names, grads[2:])}}
    got = {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0,
           **{f"grad:{n}": g for n, g in ours.grads.items()}}
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value.detach().numpy(), rtol=1e-10, atol=1e-13,
                                   err_msg=key)


def test_rnn_unbatched_and_dropout_match_torch_shapes(torch, rng):
    ref = torch.nn.RNN(3, 4, num_layers=2, dtype=torch.float64)
    ours = RNN(3, 4, num_layers=2, dtype="float64")
    ours.load_params({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((7, 3))
    y_t, hn_t = ref(torch.tensor(x))
    y, h_n = ours.forward(x, train=False)
    assert y.shape == (7, 4) and h_n.shape == (2, 4)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(h_n, hn_t.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("kw", CASES[:4], ids=str)
def test_rnn_gradients_match_central_differences(kw, rng):
    rnn = RNN(2, 3, dtype="float64", seed=1, **kw)
    x, h0, dy, dh_n = _problem(rng, kw, T=4, B=2, I=2, H=3)
    if kw["nonlinearity"] == "relu":     # keep every pre-activation away from the kink
        x = x + 2.0

    def loss():
        y, h_n = rnn.forward(x, h0, train=False)
        return float(np.sum(y * dy) + np.sum(h_n * dh_n))
    rnn.forward(x, h0)
    dx, dh0 = rnn.backward(dy, dh_n)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dh0, numeric_gradient(loss, h0), rtol=1e-6, atol=1e-8)
    for name, p in rnn.params.items():
        np.testing.assert_allclose(rnn.grads[name], numeric_gradient(loss, p), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


def test_rnn_dropout_between_layers_is_in_the_gradient(rng):
    """Training mode with dropout: the backward goes through the same masks (checked by
    central differences with the masks' generator re-seeded for every evaluation)."""
    import lstm_xp
    rnn = RNN(2, 3, num_layers=2, dropout=0.5, dtype="float64", seed=2)
    x, dy = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 3))

    def loss():
        lstm_xp.manual_seed(7)
        y, _ = rnn.forward(x)
        rnn._take()
        return float(np.sum(y * dy))
    lstm_xp.manual_seed(7)
    rnn.forward(x)
    dx, _ = rnn.backward(dy)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)


def test_rnn_runs_on_the_strict_backend(strict, rng):
    rnn = RNN(3, 4, num_layers=2, bidirectional=True, dtype="float64", device=strict, seed=0)
    ref = RNN(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=0)
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    y, h_n = rnn.forward(strict.asarray(x))
    dx, dh0 = rnn.backward(strict.asarray(dy))
    y_ref, _ = ref.forward(x)
    dx_ref, _ = ref.backward(dy)
    np.testing.assert_allclose(strict.to_numpy(y), y_ref, rtol=1e-12)
    np.testing.assert_allclose(strict.to_numpy(dx), dx_ref, rtol=1e-12)


@pytest.mark.parametrize("kw, error", [
    (dict(nonlinearity="sigmoid"), r"nonlinearity must be one of \('tanh', 'relu'\), got 'sigmoid'"),
    (dict(hidden_size=0), "hidden_size must be a positive integer, got 0"),
    (dict(dropout=1.5), r"dropout must be a number in \[0, 1\], got 1.5"),
])
def test_rnn_refuses_bad_arguments(kw, error):
    args = {**dict(input_size=2, hidden_size=3), **kw}
    with pytest.raises(ValueError, match=error):
        RNN(**args)


def test_rnn_names_bad_shapes():
    rnn = RNN(2, 3, num_layers=2, dtype="float64")
    with pytest.raises(ValueError, match="x must have 2 features"):
        rnn.forward(np.zeros((4, 1, 3)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 1, 3\) \(num_layers \* "
                                         r"num_directions, batch, hidden_size\), got \(1, 1, 3\)"):
        rnn.forward(np.zeros((4, 1, 2)), np.zeros((1, 1, 3)))
    rnn.forward(np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 1, 3\) \(steps, batch, "
                                         r"num_directions \* hidden_size\), got \(4, 1, 2\)"):
        rnn.backward(np.zeros((4, 1, 2)))
