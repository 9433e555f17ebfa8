"""The public API's contract under random use (hypothesis): any arguments, shapes, strides,
dtypes and Python lists either succeed with the documented shapes and dtypes and finite
values, or raise a ValueError or TypeError whose message starts with the name of the argument
at fault -- never another exception, a NaN, or a wrong shape."""

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from cases import relaid  # noqa: E402
from lstm_xp import (LSTM, SGD, Adam, AdamW, CrossEntropyLoss, Dropout, Embedding,  # noqa: E402
                     Linear, MSELoss, clip_grad_norm)

# derandomized: CI explores the same examples every run (a wider random search is a local
# matter: LSTM_XP_FUZZ_EXAMPLES=2000 python -m pytest tests/test_api_contract.py)
SETTINGS = dict(max_examples=int(os.environ.get("LSTM_XP_FUZZ_EXAMPLES", 150)),
                derandomize="LSTM_XP_FUZZ_EXAMPLES" not in os.environ, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = ["float32", "float64", "float16", "int64", "bool"]
LAYOUTS = ["contiguous", "strided", "transposed", "negative", "list"]


def laid_out(a: np.ndarray, layout: str):
    """``a``'s values as a list, as it is, or laid out as cases.relaid does."""
    if layout == "list":
        return a.tolist()
    return a if layout == "contiguous" else relaid(a, layout)


@st.composite
def arrays(draw, shape, dtype=None, near=None):
    """An array of ``shape`` -- or, often, of a nearby wrong shape (one axis changed, one
    added or dropped) -- of a random dtype and layout."""
    shape = list(shape)
    change = draw(st.sampled_from(["none"] * 4 + ["axis", "add", "drop"]))
    if change == "axis" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = draw(st.integers(0, 4))
    elif change == "add":
        shape.append(draw(st.integers(1, 3)))
    elif change == "drop" and shape:
        shape.pop()
    dtype = dtype or draw(st.sampled_from(DTYPES[:2] * 3 + DTYPES[2:]))
    values = np.random.default_rng(draw(st.integers(0, 99))).standard_normal(shape)
    return laid_out(np.asarray(values, dtype), draw(st.sampled_from(LAYOUTS)))


def named_error(error, names):
    """The contract for a refused call: a ValueError/TypeError naming one of ``names`` first."""
    assert isinstance(error, (ValueError, TypeError)), repr(error)
    assert str(error).startswith(tuple(names)), (str(error), names)


def finite(*outputs):
    for a in outputs:
        assert np.all(np.isfinite(np.asarray(a)))


@settings(**SETTINGS)
@given(st.data())
def test_lstm_forward_and_backward(data):
    draw = data.draw
    I, H, L = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 2))
    bi, bf = draw(st.booleans()), draw(st.booleans())
    P = draw(st.sampled_from([0, 0, 1])) if H > 1 else 0
    dtype = draw(st.sampled_from(["float32", "float64"]))
    lstm = LSTM(I, H, num_layers=L, bidirectional=bi, batch_first=bf, dtype=dtype, seed=0,
                proj_size=P)
    D, Pout, T, B = 2 if bi else 1, P or H, draw(st.integers(1, 4)), draw(st.integers(1, 3))
    unbatched = draw(st.booleans())
    seq = (T, I) if unbatched else (B, T, I) if bf else (T, B, I)
    x = draw(arrays(seq))
    state = None
    if draw(st.booleans()):
        lead = (L * D,) if unbatched else (L * D, B)
        state = (draw(arrays(lead + (Pout,), dtype)), draw(arrays(lead + (H,), dtype)))
    lengths = None
    if not unbatched and draw(st.booleans()):
        lengths = laid_out(np.array(draw(st.lists(st.integers(0, T + 1), min_size=B,
                                                  max_size=B))), draw(st.sampled_from(LAYOUTS)))
    try:
        y, (h_n, c_n) = lstm.forward(x, state, lengths=lengths)
    except Exception as error:
        return named_error(error, ["x", "state", "lengths"])
    shape = np.shape(x)            # what was accepted may differ from what was meant
    unbatched = len(shape) == 2
    T, B = (shape[0], None) if unbatched else (shape[1], shape[0]) if bf else shape[:2]
    out = (T, D * Pout) if unbatched else (B, T, D * Pout) if bf else (T, B, D * Pout)
    lead = (L * D,) if unbatched else (L * D, B)
    assert (y.shape, h_n.shape, c_n.shape) == (out, lead + (Pout,), lead + (H,))
    assert y.dtype == h_n.dtype == c_n.dtype == np.dtype(dtype)
    finite(y, h_n, c_n)
    dy = draw(st.none() | arrays(out, dtype))
    dstate = draw(st.none() | st.tuples(st.none() | arrays(lead + (Pout,), dtype),
                                        st.none() | arrays(lead + (H,), dtype)))
    try:
        dx, (dh0, dc0) = lstm.backward(dy, dstate)
    except Exception as error:
        return named_error(error, ["dy", "dstate"])
    assert (dx.shape, dh0.shape, dc0.shape) == (np.shape(x), lead + (Pout,), lead + (H,))
    finite(dx, dh0, dc0, *lstm.grads.values())


@settings(**SETTINGS)
@given(st.data())
def test_linear_dropout_embedding_and_losses(data):
    draw = data.draw
    F_in, F_out = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    layer = draw(st.sampled_from(["linear", "dropout", "embedding"]))
    if layer == "embedding":
        module = Embedding(5, F_out, dtype=dtype, seed=0)
        ids = draw(arrays(lead, draw(st.sampled_from(["int64", "int32", "float64"]))))
        try:
            y = module.forward(ids)
        except Exception as error:
            return named_error(error, ["ids"])
        assert y.shape == np.shape(ids) + (F_out,)
        grad_shape, names = y.shape, ["dy"]
    else:
        module = (Linear(F_in, F_out, dtype=dtype, seed=0) if layer == "linear"
                  else Dropout(draw(st.sampled_from([0.0, 0.5, 1.0]))))
        x = draw(arrays(lead + (F_in,)))
        try:
            y = module.forward(x)
        except Exception as error:
            return named_error(error, ["x"])
        want = np.shape(x)[:-1] + (F_out,) if layer == "linear" else np.shape(x)
        assert y.shape == want
        grad_shape, names = y.shape, ["dy"]
    finite(y)
    dy = draw(arrays(grad_shape, y.dtype.name))
    try:
        dx = module.backward(dy)
    except Exception as error:
        return named_error(error, names)
    if dx is not None:
        finite(dx)
    loss = draw(st.sampled_from(["mse", "ce"]))
    if loss == "mse" or len(y.shape) == 0:
        try:
            value = MSELoss().forward(y, draw(arrays(y.shape)))
        except Exception as error:               # pred: an empty output cannot be scored
            return named_error(error, ["target", "pred"])
    else:
        target = draw(arrays(y.shape[:-1], draw(st.sampled_from(["int64", "int32", "float32"]))))
        try:
            value = CrossEntropyLoss().forward(y, target)
        except Exception as error:
            return named_error(error, ["target", "logits"])
    finite(value)


NUMBERS = st.sampled_from([0, -1, 1e-3, 0.9, 1, 2.5, 10**400, float("nan"), float("inf"),
                           "0.1", None, True, np.float32(0.5), np.array(0.1)])


@settings(**SETTINGS)
@given(st.sampled_from(["sgd", "adam", "adamw", "clip"]), NUMBERS, NUMBERS,
       st.sampled_from(["float32", "float64"]))
def test_optimizer_arguments(kind, a, b, dtype):
    """Odd numbers as learning rates, decays and norms: a step that keeps the parameters
    finite, or an error naming the argument."""
    lstm = LSTM(2, 3, dtype=dtype, seed=0)
    y, _ = lstm.forward(np.ones((2, 1, 2), dtype))
    lstm.backward(np.ones_like(y))
    try:
        if kind == "clip":
            clip_grad_norm([lstm], a)
        else:
            make = {"sgd": lambda: SGD([lstm], lr=a, momentum=b),
                    "adam": lambda: Adam([lstm], lr=a, eps=b),
                    "adamw": lambda: AdamW([lstm], lr=a, weight_decay=b)}[kind]
            make().step()
    except Exception as error:
        return named_error(error, ["lr", "momentum", "eps", "weight_decay", "max_norm"])
    finite(*lstm.params.values(), *lstm.grads.values())
