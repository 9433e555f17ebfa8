"""Property-based tests (hypothesis): any shape, lengths, dtype and options give finite
outputs of the right shapes and dtypes that agree with the naive reference."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import given, settings, strategies as st  # noqa: E402

import naive_lstm  # noqa: E402
from cases import GATE_FORMS, LOOP_FORMS, numpy_backend  # noqa: E402
from lstm_xp import LSTM  # noqa: E402

TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


@st.composite
def problems(draw):
    T, B = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    cfg = dict(T=T, B=B, I=draw(st.integers(1, 4)), H=draw(st.integers(1, 5)),
               L=draw(st.integers(1, 3)), bi=draw(st.booleans()), bf=draw(st.booleans()),
               dtype=draw(st.sampled_from(["float32", "float64"])),
               seed=draw(st.integers(0, 2**31 - 1)), scale=draw(st.sampled_from([0.1, 1.0, 30.0])))
    cfg["lengths"] = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    cfg["state"] = draw(st.booleans())
    cfg["form"] = draw(st.sampled_from(GATE_FORMS))      # the NumPy backend's gate form
    return cfg


@settings(max_examples=60, deadline=None)
@given(problems())
def test_forward_backward_agree_with_naive_reference(p):
    T, B, I, H, L, D = p["T"], p["B"], p["I"], p["H"], p["L"], 2 if p["bi"] else 1
    rng = np.random.default_rng(p["seed"])
    dtype = p["dtype"]
    lstm = LSTM(I, H, num_layers=L, bidirectional=p["bi"], batch_first=p["bf"], dtype=dtype,
                seed=p["seed"], device=numpy_backend(p["form"]))
    x64 = rng.standard_normal((T, B, I)) * p["scale"]
    h0 = rng.standard_normal((L * D, B, H)) * 0.5
    c0 = rng.standard_normal((L * D, B, H)) * 0.5
    dy64 = rng.standard_normal((T, B, D * H))
    dh, dc = rng.standard_normal((2, L * D, B, H))
    lengths = None if p["lengths"] is None else np.array(p["lengths"])
    to_user = (lambda a: np.swapaxes(a, 0, 1)) if p["bf"] else (lambda a: a)
    cast = (lambda a: a.astype(dtype))
    state = (cast(h0), cast(c0)) if p["state"] else None

    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, (h_n, c_n) = lstm.forward(cast(to_user(x64)), state, lengths=lengths)
        dx, (dh0, dc0) = lstm.backward(cast(to_user(dy64)), (cast(dh), cast(dc)))

    outs = (to_user(y), h_n, c_n, to_user(dx), dh0, dc0)
    shapes = ((T, B, D * H), (L * D, B, H), (L * D, B, H), (T, B, I), (L * D, B, H), (L * D, B, H))
    for a, shape in zip(outs, shapes):
        assert a.shape == shape and a.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(a))
    for name, g in lstm.grads.items():
        assert g.dtype == np.dtype(dtype) and np.all(np.isfinite(g)), name

    params64 = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    zeros = np.zeros((L * D, B, H))
    s0 = (cast(h0).astype(np.float64), cast(c0).astype(np.float64)) if p["state"] else (zeros, zeros)
    want = naive_lstm.forward_backward_padded(
        params64, cast(x64).astype(np.float64), np.full(B, T) if lengths is None else lengths,
        *s0, cast(dy64).astype(np.float64), cast(dh).astype(np.float64),
        cast(dc).astype(np.float64), L, p["bi"])
    scale = max(1.0, float(np.abs(want[3]).max()))
    for label, got, ref in zip(("y", "h_n", "c_n", "dx", "dh0", "dc0"), outs, want):
        np.testing.assert_allclose(got, ref, err_msg=label, **_tol(dtype, scale))
    for name, ref in want[-1].items():
        np.testing.assert_allclose(lstm.grads[name], ref, err_msg=name,
                                   **_tol(dtype, max(1.0, float(np.abs(ref).max()))))


def _tol(dtype, scale):
    t = TOL[dtype]
    return dict(rtol=t["rtol"], atol=t["atol"] * scale)


@pytest.mark.parametrize("form", LOOP_FORMS)
@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["float32", "float64"]), st.floats(-1e4, 1e4), st.integers(0, 1000))
def test_huge_inputs_saturate_without_overflow(form, dtype, magnitude, seed):
    """Inputs of up to +-1e4 give finite outputs and gradients and no floating-point warnings,
    in either of the NumPy backend's gate forms."""
    rng = np.random.default_rng(seed)
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=seed,
                device=numpy_backend(form))
    x = (np.sign(rng.standard_normal((5, 2, 3))) * magnitude).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow is harmless
        y, (h, c) = lstm.forward(x)
        dx, _ = lstm.backward(np.ones_like(y))
    assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1) and np.all(np.isfinite(dx))
    assert all(np.all(np.isfinite(g)) for g in lstm.grads.values())
