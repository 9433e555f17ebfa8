"""Right-padded batches of different lengths: PyTorch's packed-sequence semantics."""

import numpy as np
import pytest

import naive_lstm
from cases import numeric_gradient
from lstm_xp import LSTM

# unsorted, with a length-1 sequence and a full-length one
LENGTHS = np.array([3, 6, 1, 4, 6])
CONFIGS = [dict(num_layers=1), dict(num_layers=2, bidirectional=True),
           dict(num_layers=3, bidirectional=True, batch_first=True), dict(num_layers=2)]


def problem(rng, T, B, I, H, L, D, batch_first=False):
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    state = tuple(rng.standard_normal((L * D, B, H)) * 0.5 for _ in range(2))
    y_shape = (B, T, D * H) if batch_first else (T, B, D * H)
    return x, state, rng.standard_normal(y_shape), rng.standard_normal((L * D, B, H)), \
        rng.standard_normal((L * D, B, H))


def time_major(a, batch_first):
    return np.swapaxes(a, 0, 1) if batch_first else a


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_padded_batch_matches_torch_packed_sequences(torch, kw, rng):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    T, I, H, B = 6, 3, 4, len(LENGTHS)
    L, D, bf = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1, kw.get("batch_first", False)
    ref = torch.nn.LSTM(I, H, dtype=torch.float64, **kw)
    ours = LSTM(I, H, dtype="float64", **kw)
    ours.load_params({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x, (h0, c0), dy, dh, dc = problem(rng, T, B, I, H, L, D, bf)

    y, (h_n, c_n) = ours.forward(x, (h0, c0), lengths=LENGTHS)
    dx, (dh0, dc0) = ours.backward(dy, (dh, dc))

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    packed = pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=bf, enforce_sorted=False)
    out, (ht, ct) = ref(packed, (h0t, c0t))
    yt, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
    loss = sum((a * torch.tensor(w)).sum() for a, w in ((yt, dy), (ht, dh), (ct, dc)))
    names = [n for n, _ in ref.named_parameters()]
    grads = torch.autograd.grad(loss, [xt, h0t, c0t] + list(ref.parameters()))
    close = dict(rtol=1e-10, atol=1e-13)
    for label, got, want in (("y", y, yt), ("h_n", h_n, ht), ("c_n", c_n, ct), ("dx", dx, grads[0]),
                             ("dh0", dh0, grads[1]), ("dc0", dc0, grads[2])):
        np.testing.assert_allclose(got, want.detach().numpy(), err_msg=label, **close)
    for name, g in zip(names, grads[3:]):
        np.testing.assert_allclose(ours.grads[name], g.numpy(), err_msg=name, **close)


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_padded_batch_matches_sequences_run_one_by_one(kw, rng):
    T, I, H, B = 6, 3, 4, len(LENGTHS)
    L, D, bf = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1, kw.get("batch_first", False)
    ours = LSTM(I, H, dtype="float64", seed=5, **kw)
    x, (h0, c0), dy, dh, dc = problem(rng, T, B, I, H, L, D, bf)
    y, (h_n, c_n) = ours.forward(x, (h0, c0), lengths=LENGTHS)
    dx, (dh0, dc0) = ours.backward(dy, (dh, dc))
    want = naive_lstm.forward_backward_padded(
        ours.state_dict(), time_major(x, bf), LENGTHS, h0, c0, time_major(dy, bf), dh, dc,
        L, kw.get("bidirectional", False))
    got = (time_major(y, bf), h_n, c_n, time_major(dx, bf), dh0, dc0)
    for label, g, w in zip(("y", "h_n", "c_n", "dx", "dh0", "dc0"), got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-13, err_msg=label)
    for name, g in want[-1].items():
        np.testing.assert_allclose(ours.grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)
    # padding really is inert: zero outputs and zero input gradients past each length
    pad = np.arange(T)[:, None] >= LENGTHS[None, :]
    assert not np.any(time_major(y, bf)[pad]) and not np.any(time_major(dx, bf)[pad])


def test_padded_batch_gradients_match_finite_differences(rng):
    T, I, H, L, D = 5, 2, 3, 2, 2
    lengths = np.array([2, 5, 1])
    lstm = LSTM(I, H, num_layers=L, bidirectional=True, dtype="float64", seed=2)
    x, state, dy, dh, dc = problem(rng, T, len(lengths), I, H, L, D)

    def loss():
        y, (h_n, c_n) = lstm.forward(x, state, lengths=lengths, train=False)
        return float(np.sum(y * dy) + np.sum(h_n * dh) + np.sum(c_n * dc))

    lstm.forward(x, state, lengths=lengths)
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))
    close = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), **close)
    np.testing.assert_allclose(dh0, numeric_gradient(loss, state[0]), **close)
    np.testing.assert_allclose(dc0, numeric_gradient(loss, state[1]), **close)
    for name, p in lstm.params.items():
        np.testing.assert_allclose(lstm.grads[name], numeric_gradient(loss, p), err_msg=name, **close)


def test_full_lengths_equal_no_lengths_and_padding_values_do_not_matter(rng):
    lstm = LSTM(3, 4, bidirectional=True, dtype="float64", seed=1)
    x = rng.standard_normal((5, 3, 3))
    y_plain, _ = lstm.forward(x)
    y_full, _ = lstm.forward(x, lengths=[5, 5, 5])
    np.testing.assert_array_equal(y_plain, y_full)
    lengths = np.array([2, 5, 3])
    y1, (h1, c1) = lstm.forward(x, lengths=lengths)
    x2 = x.copy()
    x2[4:, 0] = 1e3          # garbage in the padding of sequence 0 (length 2) ...
    x2[3:, 2] = -7.0         # ... and of sequence 2 (length 3)
    y2, (h2, c2) = lstm.forward(x2, lengths=lengths)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c1, c2)


@pytest.mark.parametrize("lengths, error, match", [
    ([3, 0, 2], ValueError, r"zero-length sequences are not allowed\), got lengths\[1\] = 0"),
    ([3, 6, 2], ValueError, r"lengths must be in \[1, 5\].*lengths\[1\] = 6"),
    ([3, 2], ValueError, r"lengths must have shape \(batch,\) = \(3,\), got \(2,\)"),
    (np.array([3.0, 2.0, 1.0]), TypeError, "lengths must hold integers, got dtype float64"),
    (np.array([True, True, True]), TypeError, "lengths must hold integers"),
])
def test_bad_lengths_are_named(lengths, error, match):
    lstm = LSTM(3, 4)
    with pytest.raises(error, match=match):
        lstm.forward(np.ones((5, 3, 3), np.float32), lengths=lengths)
    with pytest.raises(ValueError, match="lengths applies to batched input"):
        lstm.forward(np.ones((5, 3), np.float32), lengths=[5])


def test_lengths_on_the_strict_device(strict, rng):
    """The masking is array-API code too: same answers on the strict device."""
    results = []
    x = rng.standard_normal((5, 3, 2))
    dy = rng.standard_normal((5, 3, 6))
    for device in ("cpu", strict):
        lstm = LSTM(2, 3, bidirectional=True, dtype="float64", seed=4, device=device)
        y, (h, c) = lstm.forward(x, lengths=np.array([5, 1, 3]))
        dx, _ = lstm.backward(dy)
        to_np = lstm.backend.to_numpy
        results.append([to_np(a) for a in (y, h, c, dx)] + [to_np(g) for g in lstm.grads.values()])
    for want, got in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_padding_may_hold_anything_even_nan(rng):
    """As with PyTorch's packed sequences, values in the padding are never read."""
    lstm = LSTM(2, 3, bidirectional=True, dtype="float64", seed=0)
    lengths = np.array([4, 2])
    x = rng.standard_normal((4, 2, 2))
    dy = rng.standard_normal((4, 2, 6))
    y, _ = lstm.forward(x, lengths=lengths)
    dx, _ = lstm.backward(dy)
    grads = {k: v.copy() for k, v in lstm.grads.items()}
    x_nan, dy_nan = x.copy(), dy.copy()
    x_nan[2:, 1] = np.nan
    dy_nan[2:, 1] = np.inf
    y2, _ = lstm.forward(x_nan, lengths=lengths)
    lstm.zero_grad()
    dx2, _ = lstm.backward(dy_nan)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(dx2, dx)
    for name in grads:
        np.testing.assert_array_equal(lstm.grads[name], grads[name])
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        x_nan[1, 1] = np.nan                     # inside sequence 1 (length 2): rejected
        lstm.forward(x_nan, lengths=lengths)
