"""The compiled time loops (backends/numba_steps.py, the ``jit`` extra) against the generic
ones, and the rule that picks them. The gradient and PyTorch checks run them too
(cases.LOOP_FORMS)."""

import importlib
import sys

import numpy as np
import pytest

import backends
import backends.numpy_backend as nb
from backends.base import Backend
from backends.numpy_backend import NumpyBackend
from cases import numpy_backend, require_numba
from lstm_xp import LSTM

GENERIC = Backend("generic-numpy", np)
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-13, atol=1e-14)}


def numpy_loop() -> NumpyBackend:
    """The default NumPy backend with the compiled loops off (its gate forms as they are)."""
    backend = NumpyBackend()
    backend.jit_max_units = 0
    return backend


def loop_inputs(rng, T, B, H, dtype, padded):
    gates = (rng.standard_normal((T, B, 4 * H)) * 3).astype(dtype)
    w_t = (rng.standard_normal((H, 4 * H)) * 0.5).astype(dtype)
    h = np.full((T + 1, B, H), np.nan, dtype)
    c = np.full((T + 1, B, H), np.nan, dtype)
    hold = None
    if padded:
        lengths = rng.integers(1, T + 1, size=B)
        hold = (np.arange(T)[:, None] >= lengths[None, :])[:, :, None]
    return gates, h, c, w_t, hold


def run_loop(backend, gates, h, c, w_t, hold, reverse):
    gates, h, c = gates.copy(), h.copy(), c.copy()
    first = gates.shape[0] if reverse else 0
    rng = np.random.default_rng(5)
    h[first] = rng.standard_normal(h.shape[1:])
    c[first] = rng.standard_normal(c.shape[1:])
    backend.lstm_forward_steps(gates, h, c, w_t, hold, reverse)
    return gates, h, c


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("T,B,H", [(1, 1, 1), (6, 3, 5), (9, 2, 16)])
def test_compiled_loop_matches_the_generic_one(T, B, H, padded, reverse, dtype, rng):
    inputs = loop_inputs(rng, T, B, H, dtype, padded)
    want = run_loop(GENERIC, *inputs, reverse)
    got = run_loop(numpy_backend("jit"), *inputs, reverse)
    for name, a, b in zip(("gates", "h", "c"), got, want):
        assert a.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(a, b, err_msg=name, **TOL[dtype])
    if padded:     # held steps copy the state exactly
        hold = inputs[4]
        prev, cur = (1, 0) if reverse else (0, 1)
        for t, b in zip(*np.nonzero(hold[:, :, 0])):
            np.testing.assert_array_equal(got[1][t + cur, b], got[1][t + prev, b])
            np.testing.assert_array_equal(got[2][t + cur, b], got[2][t + prev, b])


def run_backward(backend, rng, S, B, H, dtype, padded, with_dy, reverse):
    r = np.random.default_rng(rng.integers(1 << 30))
    factors = r.standard_normal((S, B, 4 * H)).astype(dtype)
    alpha, f_keep = (r.standard_normal((2, S, B, H)) * 0.5).astype(dtype)
    dh, dc = r.standard_normal((2, B, H)).astype(dtype)
    w_hh = (r.standard_normal((4 * H, H)) / np.sqrt(4 * H)).astype(dtype)   # dh stays O(1)
    # dy with a row stride wider than H, as a bidirectional layer's slice of dL/dy is
    dy = r.standard_normal((S, B, 2 * H)).astype(dtype)[:, :, :H] if with_dy else None
    hold = (r.random((S, B, 1)) < 0.3) if padded else None
    dh, dc = dh.copy(), dc.copy()
    backend.lstm_backward_steps(factors, alpha, f_keep, dh, dc, w_hh, dy, hold, reverse)
    return factors, dh, dc


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("padded,with_dy", [(False, True), (True, True), (False, False)])
@pytest.mark.parametrize("S,B,H", [(1, 1, 1), (5, 3, 4), (7, 2, 16)])
def test_compiled_backward_block_matches_the_generic_one(S, B, H, padded, with_dy, reverse,
                                                         dtype):
    want = run_backward(GENERIC, np.random.default_rng(11), S, B, H, dtype, padded, with_dy,
                        reverse)
    got = run_backward(numpy_backend("jit"), np.random.default_rng(11), S, B, H, dtype, padded,
                       with_dy, reverse)
    for name, a, b in zip(("da", "dh", "dc"), got, want):
        assert a.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(a, b, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_loop_saturates_exactly(dtype):
    """Pre-activations of +-1e4: exp overflows to inf, and the gates take their exact limits."""
    jit = numpy_backend("jit")
    gates = np.array([[[1e4, -1e4, 1e4, -1e4]], [[-1e4, 1e4, -1e4, 1e4]]], dtype=dtype)
    h, c = np.zeros((3, 1, 1), dtype), np.ones((3, 1, 1), dtype)
    with np.errstate(all="raise"):
        jit.lstm_forward_steps(gates, h, c, np.zeros((1, 4), dtype), None, False)
    np.testing.assert_array_equal(gates[:, 0, :], [[1, 0, 1, 0], [0, 1, -1, 1]])
    assert np.isfinite(h).all() and np.isfinite(c).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_compiled_loop_runs_up_to_jit_max_units_state_entries(dtype, rng):
    """By default the compiled loop runs where B*H <= JIT_MAX_UNITS and the NumPy loop above
    (bit for bit what each gives), whatever the values."""
    require_numba()
    H = 16
    B_max = NumpyBackend.JIT_MAX_UNITS // H
    for B, form in ((B_max, "jit"), (B_max + 1, "numpy")):
        inputs = loop_inputs(rng, 4, B, H, dtype, padded=True)
        got = run_loop(NumpyBackend(), *inputs, False)
        want = run_loop(numpy_backend("jit") if form == "jit" else numpy_loop(), *inputs, False)
        other = run_loop(numpy_loop() if form == "jit" else numpy_backend("jit"), *inputs, False)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(got[0], other[0])          # the two loops differ in bits


def test_without_numba_the_numpy_loop_runs_everywhere(monkeypatch, rng):
    inputs = loop_inputs(rng, 5, 2, 3, "float64", padded=False)
    want = run_loop(numpy_loop(), *inputs, True)
    monkeypatch.setattr(nb, "_compiled", None)       # as when `import numba` fails
    assert nb.compiled_loops() is None
    got = run_loop(NumpyBackend(), *inputs, True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def lstm_gradients(backend, x, lengths=None, block_bytes=None):
    if block_bytes is not None:
        backend.backward_block_bytes = block_bytes
    lstm = LSTM(x.shape[-1], 16, bidirectional=True, dtype=x.dtype.name, seed=4, device=backend)
    y, (h_n, c_n) = lstm.forward(x, lengths=lengths)
    dx, (dh0, dc0) = lstm.backward(np.cos(y), (h_n, c_n))
    return [y, dx, dh0, dc0] + [g.copy() for g in lstm.grads.values()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_backward_over_many_blocks_equals_one_block(dtype, rng):
    """dh and dc carry across blocks: blocks of 3 steps (not dividing T) give the bits of one."""
    x = rng.standard_normal((8, 4, 3)).astype(dtype)
    lengths = np.array([8, 2, 5, 1])
    one = lstm_gradients(numpy_backend("jit"), x, lengths)
    blocks = numpy_backend("jit")
    many = lstm_gradients(blocks, x, lengths, block_bytes=3 * 4 * 4 * 16 * x.dtype.itemsize)
    assert blocks.backward_block_steps(8, 4, 16, x.dtype.itemsize) == 3
    for a, b in zip(many, one):
        np.testing.assert_array_equal(a, b)


def test_the_size_rule_holds_for_backward_too(rng):
    """A whole training step (both loops) at B*H = JIT_MAX_UNITS is the compiled loops' and
    one row more the NumPy loop's, bit for bit."""
    require_numba()
    B_max = NumpyBackend.JIT_MAX_UNITS // 16
    for B, form in ((B_max, "jit"), (B_max + 1, "tanh")):
        x = rng.standard_normal((5, B, 3))
        forced = numpy_backend(form)
        forced.exp_form_min_size = NumpyBackend().exp_form_min_size      # the default forms
        for a, b in zip(lstm_gradients(NumpyBackend(), x), lstm_gradients(forced, x)):
            np.testing.assert_array_equal(a, b)


def test_without_a_writable_cache_the_loops_compile_uncached(monkeypatch, rng):
    """A read-only install and home folder: numba refuses cache=True at decoration; the
    module then compiles without a cache instead of failing."""
    require_numba()
    from numba.core import caching

    def no_place(self):
        raise PermissionError("read-only")
    monkeypatch.setattr(caching._CacheLocator, "ensure_cache_path", no_place)
    monkeypatch.delitem(sys.modules, "backends.numba_steps")
    monkeypatch.setattr(backends, "numba_steps", None, raising=False)
    module = importlib.import_module("backends.numba_steps")

    class Uncached:
        def lstm_forward_steps(self, gates, h, c, w_t, hold, reverse):
            module.forward_steps(gates, h, c, w_t, hold, reverse)
    inputs = loop_inputs(rng, 3, 2, 2, "float64", padded=True)
    for a, b in zip(run_loop(Uncached(), *inputs, False), run_loop(GENERIC, *inputs, False)):
        np.testing.assert_allclose(a, b, **TOL["float64"])


def test_a_broken_numba_warns_once_and_the_numpy_loop_runs(monkeypatch, rng):
    require_numba()
    import numba

    def broken(*args, **kwargs):
        raise ValueError("broken numba")
    monkeypatch.setattr(numba, "njit", broken)
    monkeypatch.delitem(sys.modules, "backends.numba_steps")
    monkeypatch.delattr(backends, "numba_steps", raising=False)     # so that it loads again
    monkeypatch.setattr(nb, "_compiled", False)
    with pytest.warns(RuntimeWarning, match="NumPy loop runs instead"):
        assert nb.compiled_loops() is None
    assert nb.compiled_loops() is None                 # decided once: no second warning
    inputs = loop_inputs(rng, 4, 2, 3, "float64", padded=False)
    for a, b in zip(run_loop(NumpyBackend(), *inputs, False), run_loop(numpy_loop(), *inputs, False)):
        np.testing.assert_array_equal(a, b)
