"""The fast path against the independent one-step-one-gate reference in tests/naive_lstm.py."""

import numpy as np
import pytest

import naive_lstm
from cases import GRID, make_problem
from lstm_xp import LSTM


def time_major(a, case):
    if a is None:
        return None
    if case.batch is None:
        return a[:, None, :]
    return np.swapaxes(a, 0, 1) if case.batch_first else a


def state_major(a, case):
    return None if a is None else (a[:, None, :] if case.batch is None else a)


@pytest.mark.parametrize("case", GRID, ids=str)
def test_fast_path_matches_naive_reference(case, rng):
    T, I, H = 6, 4, 5
    lstm = LSTM(I, H, num_layers=case.layers, bidirectional=case.bidirectional,
                batch_first=case.batch_first, dtype="float64", seed=11)
    params = lstm.state_dict()
    x, state, dy, dh, dc = make_problem(case, rng, T, I, H)

    y, (h_n, c_n) = lstm.forward(x, state)
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))

    B = 1 if case.batch is None else case.batch
    LD, D = case.layers * case.directions, case.directions
    zeros = np.zeros((LD, B, H))
    h0, c0 = (zeros, zeros) if state is None else (state_major(state[0], case),
                                                   state_major(state[1], case))
    ry, rh, rc, record = naive_lstm.forward(params, time_major(x, case), h0, c0,
                                            case.layers, case.bidirectional)
    rdx, rdh0, rdc0, rgrads = naive_lstm.backward(
        params, record,
        np.zeros((T, B, D * H)) if dy is None else time_major(dy, case),
        zeros if dh is None else state_major(dh, case),
        zeros if dc is None else state_major(dc, case),
        case.layers, case.bidirectional, I)

    close = dict(rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(time_major(y, case), ry, **close)
    np.testing.assert_allclose(state_major(h_n, case), rh, **close)
    np.testing.assert_allclose(state_major(c_n, case), rc, **close)
    np.testing.assert_allclose(time_major(dx, case), rdx, **close)
    np.testing.assert_allclose(state_major(dh0, case), rdh0, **close)
    np.testing.assert_allclose(state_major(dc0, case), rdc0, **close)
    for name in params:
        np.testing.assert_allclose(lstm.grads[name], rgrads[name], err_msg=name, **close)
