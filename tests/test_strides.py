"""Every public entry point accepts arrays of any strides, as torch's modules do
(torch's test_modules.test_non_contiguous_tensors): a strided view, a transposed (Fortran
order) copy and a view with negative strides give bitwise the results of a C-contiguous
array of the same values -- outputs, input gradients and parameter gradients."""

import numpy as np
import pytest

from cases import GRID, LOOP_FORMS, STRIDE_LAYOUTS, make_problem, numpy_backend
from cases import relaid as relaid_as
from lstm_xp import (LSTM, CrossEntropyLoss, Dropout, Embedding, Linear, MSELoss,
                     manual_seed)

LAYOUTS = STRIDE_LAYOUTS


def relaid(a, layout: str) -> np.ndarray:
    """cases.relaid, checked: equal values, and not C-contiguous (an array with one axis
    longer than 1 is both C and Fortran ordered)."""
    view = relaid_as(a, layout)
    assert np.array_equal(view, a)
    assert not view.flags.c_contiguous or sum(n > 1 for n in a.shape) < 2
    return view


def same_bits(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), what


def lstm_run(case, form, dtype, arrays, lengths=None, **options):
    """forward + backward of a fresh LSTM (same seed) on ``arrays``; every result, on the host."""
    x, state, dy, dh, dc = arrays
    lstm = LSTM(3, 4, num_layers=case.layers, bidirectional=case.bidirectional,
                batch_first=case.batch_first, dtype=dtype, seed=0, device=numpy_backend(form),
                **options)
    manual_seed(7)                             # the same masks in every layout, where any
    y, (h_n, c_n) = lstm.forward(x, state, lengths=lengths)
    dstate = None if dh is None and dc is None else (dh, dc)
    dx, (dh0, dc0) = lstm.backward(dy, dstate)
    return {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0,
            **{f"grad {k}": v.copy() for k, v in lstm.grads.items()}}


@pytest.mark.parametrize("form", LOOP_FORMS)
@pytest.mark.parametrize("case", GRID, ids=str)
def test_lstm_any_strides(case, form):
    rng = np.random.default_rng(0)
    dtype = "float64" if case.layers == 2 else "float32"
    arrays = [None if a is None else a.astype(dtype) if not isinstance(a, tuple)
              else tuple(s.astype(dtype) for s in a)
              for a in make_problem(case, rng, 5, 3, 4)]
    want = lstm_run(case, form, dtype, arrays)
    for layout in LAYOUTS:
        x, state, dy, dh, dc = arrays
        moved = [relaid(x, layout), None if state is None else tuple(relaid(s, layout)
                                                                       for s in state),
                 None if dy is None else relaid(dy, layout),
                 None if dh is None else relaid(dh, layout),
                 None if dc is None else relaid(dc, layout)]
        got = lstm_run(case, form, dtype, moved)
        for name in want:
            same_bits(got[name], want[name], f"{layout}: {name}")


@pytest.mark.parametrize("options", [dict(proj_size=2), dict(peephole=True, zoneout=0.2),
                                     dict(dropout=0.3, num_layers=2)], ids=str)
def test_lstm_any_strides_with_options_and_lengths(options):
    """Projection, the cell variants (their own generic path) and padded batches whose
    ``lengths`` is itself a strided array."""
    rng = np.random.default_rng(1)
    T, B, I, H = 6, 4, 3, 4
    lstm_args = dict(bidirectional=True, dtype="float64", seed=3, **options)
    P = options.get("proj_size") or H
    LD = 2 * options.get("num_layers", 1)
    x = rng.standard_normal((T, B, I))
    state = (rng.standard_normal((LD, B, P)), rng.standard_normal((LD, B, H)))
    dy, dh = rng.standard_normal((T, B, 2 * P)), rng.standard_normal((LD, B, P))
    lengths = np.array([6, 3, 5, 1])

    def run(x, state, dy, dh, lengths):
        lstm = LSTM(I, H, **lstm_args)
        manual_seed(11)
        y, (h_n, c_n) = lstm.forward(x, state, lengths=lengths)
        dx, (dh0, dc0) = lstm.backward(dy, (dh, None))
        return [y, h_n, c_n, dx, dh0, dc0] + [lstm.grads[k].copy() for k in sorted(lstm.grads)]

    want = run(x, state, dy, dh, lengths)
    for layout in LAYOUTS:
        got = run(relaid(x, layout), tuple(relaid(s, layout) for s in state),
                  relaid(dy, layout), relaid(dh, layout), relaid(lengths, layout))
        for i, (g, w) in enumerate(zip(got, want)):
            same_bits(g, w, f"{layout}: result {i}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_strided_dy_slices_as_users_write_them(layout):
    """The cases that regressed: dy[..., ::2] of a wider array, dy.T of a transposed one,
    and a negative stride on dy's last axis only."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 3)).astype("float32")
    dy = rng.standard_normal((5, 2, 4)).astype("float32")
    views = {"strided": np.repeat(dy, 2, axis=-1)[..., ::2],
             "transposed": np.ascontiguousarray(dy.T).T,
             "negative": np.ascontiguousarray(dy[..., ::-1])[..., ::-1]}
    results = []
    for d in (dy, views[layout]):
        lstm = LSTM(3, 4, seed=0)
        lstm.forward(x)
        results.append((lstm.backward(d)[0], lstm.grads["weight_hh_l0"].copy()))
    for got, want in zip(results[1], results[0]):
        same_bits(got, want, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_embedding_dropout_and_losses_any_strides(layout):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5))
    dy = rng.standard_normal((4, 3, 2))
    target = rng.standard_normal((4, 3, 2))
    ids = rng.integers(0, 6, (4, 3))
    classes = rng.integers(0, 2, (4, 3))

    def run(lay):
        out = []
        lin = Linear(5, 2, dtype="float64", seed=0)
        y = lin.forward(lay(x))
        out += [y, lin.backward(lay(dy)), lin.grads["weight"].copy(), lin.grads["bias"].copy()]
        emb = Embedding(6, 2, dtype="float64", seed=0)
        out += [emb.forward(lay(ids))]
        emb.backward(lay(dy))
        out += [emb.grads["weight"].copy()]
        manual_seed(5)
        drop = Dropout(0.5)
        out += [drop.forward(lay(x)), drop.backward(lay(np.full(x.shape, 0.5)))]
        mse = MSELoss()
        out += [mse.forward(lay(y), lay(target)), mse.backward()]
        ce = CrossEntropyLoss()
        out += [ce.forward(lay(y), lay(classes)), ce.backward()]
        return out

    want = run(lambda a: a)
    got = run(lambda a: relaid(a, layout))
    for i, (g, w) in enumerate(zip(got, want)):
        same_bits(g, w, f"{layout}: result {i}")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_dimensional_linear_and_cross_entropy_any_strides(layout, dtype):
    """2-D operands large enough for BLAS and NumPy's pairwise sums to block their work:
    (64, 33) inputs, a (64, 9) gradient, (64, 9) logits."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 33)).astype(dtype)
    dy = rng.standard_normal((64, 9)).astype(dtype)
    classes = rng.integers(0, 9, 64)

    def run(lay):
        lin = Linear(33, 9, dtype=dtype, seed=1)
        y = lin.forward(lay(x))
        dx = lin.backward(lay(dy))
        ce = CrossEntropyLoss()
        value = ce.forward(lay(y), classes)
        return [y, dx, lin.grads["weight"].copy(), lin.grads["bias"].copy(), value, ce.backward()]

    want = run(lambda a: a)
    got = run(lambda a: relaid(a, layout))
    for i, (g, w) in enumerate(zip(got, want)):
        same_bits(g, w, f"{layout}: result {i}")
