"""The configuration grid shared by the gradient, oracle and reference tests."""

import os
from dataclasses import dataclass

import numpy as np
import pytest

from backends.numpy_backend import NumpyBackend, compiled_loops


@dataclass(frozen=True)
class Case:
    layers: int
    bidirectional: bool
    batch_first: bool
    batch: int | None          # None: unbatched input (T, I)
    given_state: bool          # non-zero (h0, c0) passed in, else None (zeros)
    dy: bool                   # which output gradients backward receives
    dh: bool
    dc: bool

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    def __str__(self):
        parts = [f"L{self.layers}", "bi" if self.bidirectional else "uni",
                 "bf" if self.batch_first else "tm",
                 "unbatched" if self.batch is None else f"B{self.batch}",
                 "h0c0" if self.given_state else "nostate",
                 "d" + "".join(n for n, on in (("y", self.dy), ("h", self.dh), ("c", self.dc)) if on)]
        return "-".join(parts)


# every value of every option appears, in mixed company: layers 1-3, uni/bidirectional,
# time-major/batch_first, B=1/B>1/unbatched, given/absent initial state, and each of
# (dy, dh_n, dc_n) present and absent
GRID = [
    Case(1, False, False, 1, False, True, True, True),
    Case(1, False, False, 3, True, True, False, False),
    Case(1, True, False, 2, True, True, True, True),
    Case(1, True, True, 1, False, False, True, False),
    Case(2, False, True, 2, True, False, False, True),
    Case(2, True, False, 3, True, True, True, False),
    Case(2, True, True, 2, False, True, False, True),
    Case(3, False, False, 2, True, False, True, True),
    Case(3, True, True, 3, True, True, True, True),
    Case(3, True, False, 1, False, True, False, False),
    Case(2, True, False, None, True, True, True, True),
    Case(1, False, True, None, False, True, False, True),
]


def make_problem(case, rng, steps, input_size, hidden):
    """Random x, state and output gradients for ``case``, in the user's layout."""
    T, B, I, H = steps, case.batch, input_size, hidden
    LD, D = case.layers * case.directions, case.directions
    if B is None:
        x_shape, state_shape, y_shape = (T, I), (LD, H), (T, D * H)
    elif case.batch_first:
        x_shape, state_shape, y_shape = (B, T, I), (LD, B, H), (B, T, D * H)
    else:
        x_shape, state_shape, y_shape = (T, B, I), (LD, B, H), (T, B, D * H)
    x = rng.standard_normal(x_shape)
    state = None
    if case.given_state:
        state = (rng.standard_normal(state_shape) * 0.5, rng.standard_normal(state_shape) * 0.5)
    dy = rng.standard_normal(y_shape) if case.dy else None
    dh = rng.standard_normal(state_shape) if case.dh else None
    dc = rng.standard_normal(state_shape) if case.dc else None
    return x, state, dy, dh, dc


def weighted_loss(y, h_n, c_n, dy, dh, dc):
    """L = <y, dy> + <h_n, dh> + <c_n, dc>, so that dL/dy = dy etc.; absent terms dropped."""
    total = 0.0
    for value, weight in ((y, dy), (h_n, dh), (c_n, dc)):
        if weight is not None:
            total += float(np.sum(np.asarray(value) * weight))
    return total


def numeric_gradient(f, a, eps=1e-6):
    """dF/da by central differences, perturbing ``a`` in place one entry at a time."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        keep = a[idx]
        a[idx] = keep + eps
        up = f()
        a[idx] = keep - eps
        down = f()
        a[idx] = keep
        grad[idx] = (up - down) / (2 * eps)
    return grad


# The NumPy backend activates the gates in one of two forms, chosen by the batch's size
# (NumpyBackend.exp_form_min_size); the small test shapes would only ever see one of them.
GATE_FORMS = ("tanh", "exp")
# Where numba is installed it also runs the time loops as compiled loops at tiny shapes
# (NumpyBackend.jit_max_units), which the test shapes all are; "jit" forces those loops, the
# gate forms force the NumPy loop.
LOOP_FORMS = GATE_FORMS + ("jit",)


def numpy_backend(form: str) -> NumpyBackend:
    """A NumPy backend that runs the NumPy time loop with gate form ``form`` ("tanh" or
    "exp") at every size, or (``form`` "jit") the compiled loops at every size."""
    backend = NumpyBackend()
    if form == "jit":
        require_numba()
        backend.jit_max_units = float("inf")
        return backend
    size = {"tanh": float("inf"), "exp": 0}[form]
    backend.exp_form_min_size = {"float32": size, "float64": size}
    backend.jit_max_units = 0
    return backend


def require_numba() -> None:
    """Skip without numba (the ``jit`` extra); CI sets LSTM_XP_REQUIRE_NUMBA=1, so there it fails."""
    if compiled_loops() is None:
        if os.environ.get("LSTM_XP_REQUIRE_NUMBA") == "1":
            pytest.fail("LSTM_XP_REQUIRE_NUMBA=1 but numba is not installed (or fails to import)")
        pytest.skip('numba is not installed: the compiled loops need pip install ".[jit]"')


OPTIMIZER_KINDS = ["sgd", "momentum", "nesterov", "adam", "adam_l2", "adamw"]


def optimizer_steps(backend, kind: str, p0, grads) -> list:
    """Three steps of ``backend``'s fused update of ``kind`` (OPTIMIZER_KINDS) from p0 with
    the host arrays ``grads``; returns host copies of the parameter and the two state slots."""
    p, s1, s2 = (backend.asarray(a, copy=True) for a in (p0, np.zeros_like(p0), np.zeros_like(p0)))
    for step, g in enumerate(grads, 1):
        g = backend.asarray(g)
        if kind.startswith("adam"):
            backend.adam_update(p, g, s1, s2, step, lr=0.01, b1=0.9, b2=0.999, eps=1e-8,
                                weight_decay=0.0 if kind == "adam" else 0.1,
                                decoupled=kind == "adamw")
        else:
            backend.sgd_update(p, g, None if kind == "sgd" else s1, lr=0.1, momentum=0.9,
                               weight_decay=0.05, nesterov=kind == "nesterov")
    return [np.array(backend.to_numpy(a)) for a in (p, s1, s2)]


STRIDE_LAYOUTS = ("strided", "transposed", "negative")


def relaid(a: np.ndarray, layout: str) -> np.ndarray:
    """An array equal to ``a`` in value, laid out in memory as ``layout`` (STRIDE_LAYOUTS)
    says: every other element of a wider buffer on every axis; Fortran order (the last axis
    has the largest stride); or every axis reversed in memory (every stride negative). A
    0-d array is returned as it is."""
    if a.ndim == 0:
        return a
    if layout == "strided":
        wide = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
        view = wide[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "transposed":
        return np.asfortranarray(a)
    flip = tuple(slice(None, None, -1) for _ in a.shape)
    return np.ascontiguousarray(a[flip])[flip]
