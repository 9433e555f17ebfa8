"""Every gradient of the LSTM against central finite differences, in float64."""

import numpy as np
import pytest

from cases import LOOP_FORMS, GRID, make_problem, numeric_gradient, numpy_backend, weighted_loss
from lstm_xp import LSTM


def assert_close(name, analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8,
                               err_msg=f"gradient of {name}")


@pytest.mark.parametrize("form", LOOP_FORMS)
@pytest.mark.parametrize("case", GRID, ids=str)
def test_every_gradient_matches_finite_differences(case, form, rng):
    T, I, H = 4, 3, 3
    lstm = LSTM(I, H, num_layers=case.layers, bidirectional=case.bidirectional,
                batch_first=case.batch_first, dtype="float64", seed=7,
                device=numpy_backend(form))
    x, state, dy, dh, dc = make_problem(case, rng, T, I, H)

    def loss():
        y, (h_n, c_n) = lstm.forward(x, state, train=False)
        return weighted_loss(y, h_n, c_n, dy, dh, dc)

    lstm.forward(x, state)
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))

    assert dx.shape == x.shape
    assert_close("x", dx, numeric_gradient(loss, x))
    if state is not None:
        assert_close("h0", dh0, numeric_gradient(loss, state[0]))
        assert_close("c0", dc0, numeric_gradient(loss, state[1]))
    assert set(lstm.grads) == set(lstm.params)
    for name, param in lstm.params.items():
        assert_close(name, lstm.grads[name], numeric_gradient(loss, param))


def test_initial_state_gradient_when_forward_started_from_zeros(rng):
    """dh0/dc0 are returned (and correct) even when forward got state=None."""
    lstm = LSTM(2, 3, num_layers=2, dtype="float64", seed=3)
    x = rng.standard_normal((5, 2, 2))
    dy = rng.standard_normal((5, 2, 3))
    zeros = (np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))
    lstm.forward(x)
    _, (dh0, dc0) = lstm.backward(dy)

    def loss():
        y, _ = lstm.forward(x, zeros, train=False)
        return float(np.sum(y * dy))

    assert_close("h0", dh0, numeric_gradient(loss, zeros[0]))
    assert_close("c0", dc0, numeric_gradient(loss, zeros[1]))
    assert np.abs(dh0).max() > 0 and np.abs(dc0).max() > 0


def test_no_output_gradient_gives_zero_gradients(rng):
    lstm = LSTM(2, 3, bidirectional=True, dtype="float64", seed=3)
    x = rng.standard_normal((4, 2, 2))
    lstm.forward(x)
    dx, (dh0, dc0) = lstm.backward()
    assert not np.any(dx) and not np.any(dh0) and not np.any(dc0)
    assert not any(np.any(g) for g in lstm.grads.values())
