"""The public interface: names, shapes, layouts, initialisation, and the errors users get."""

import math

import numpy as np
import pytest

import lstm_xp
from lstm_xp import LSTM, SGD, Adam, CrossEntropyLoss, Linear, MSELoss, clip_grad_norm


def test_parameter_names_and_shapes_follow_pytorch():
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True)
    want = {}
    for k, in_k in ((0, 3), (1, 10)):
        for sfx in ("", "_reverse"):
            want[f"weight_ih_l{k}{sfx}"] = (20, in_k)
            want[f"weight_hh_l{k}{sfx}"] = (20, 5)
            want[f"bias_ih_l{k}{sfx}"] = (20,)
            want[f"bias_hh_l{k}{sfx}"] = (20,)
    assert {k: v.shape for k, v in lstm.params.items()} == want
    assert {k: v.shape for k, v in lstm.grads.items()} == want
    assert all(v.dtype == np.float32 for v in lstm.params.values())


def test_default_init_is_uniform_within_one_over_sqrt_h():
    H = 64
    lstm = LSTM(16, H, seed=0)
    bound = 1 / math.sqrt(H)
    for v in lstm.params.values():
        assert np.abs(v).max() <= bound
        # U(-b, b) has standard deviation b / sqrt(3)
        assert abs(v.std() - bound / math.sqrt(3)) < 0.1 * bound


def test_seed_makes_init_reproducible():
    a, b, c = LSTM(4, 6, seed=1), LSTM(4, 6, seed=1), LSTM(4, 6, seed=2)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["weight_hh_l0"], c.params["weight_hh_l0"])


def test_forget_bias_and_orthogonal_recurrent_init():
    H = 8
    lstm = LSTM(3, H, num_layers=2, forget_bias=1.0, recurrent_init="orthogonal",
                dtype="float64", seed=0)
    for k in range(2):
        b = lstm.params[f"bias_ih_l{k}"] + lstm.params[f"bias_hh_l{k}"]
        np.testing.assert_array_equal(b[H:2 * H], 1.0)
        w = lstm.params[f"weight_hh_l{k}"]
        for gate in range(4):
            block = w[gate * H:(gate + 1) * H]
            np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
    with pytest.raises(ValueError, match="recurrent_init must be one of"):
        LSTM(3, 4, recurrent_init="xavier")


def test_layouts_agree(rng):
    """batch_first and unbatched inputs give the time-major results, transposed."""
    tm = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=3)
    bf = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype="float64", seed=3)
    x = rng.standard_normal((6, 2, 3))
    dy = rng.standard_normal((6, 2, 8))
    y, (h, c) = tm.forward(x)
    dx, _ = tm.backward(dy)
    yb, (hb, cb) = bf.forward(np.swapaxes(x, 0, 1))
    dxb, _ = bf.backward(np.swapaxes(dy, 0, 1))
    assert yb.shape == (2, 6, 8) and hb.shape == (4, 2, 4)
    np.testing.assert_allclose(np.swapaxes(yb, 0, 1), y, rtol=1e-13)
    np.testing.assert_allclose(np.swapaxes(dxb, 0, 1), dx, rtol=1e-13)
    for name in tm.grads:
        np.testing.assert_allclose(bf.grads[name], tm.grads[name], rtol=1e-12, atol=1e-15)

    yu, (hu, cu) = tm.forward(x[:, 0])
    assert yu.shape == (6, 8) and hu.shape == (4, 4) and cu.shape == (4, 4)
    np.testing.assert_allclose(yu, y[:, 0], rtol=1e-13)
    np.testing.assert_allclose(hu, h[:, 0], rtol=1e-13)
    dxu, (dh0, dc0) = tm.backward(dy[:, 0])
    assert dxu.shape == (6, 3) and dh0.shape == (4, 4) and dc0.shape == (4, 4)


def test_float32_stays_float32(rng):
    lstm = LSTM(3, 4, bidirectional=True, seed=0)
    y, (h, c) = lstm.forward(rng.standard_normal((5, 2, 3)).astype(np.float32))
    dx, (dh0, dc0) = lstm.backward(np.ones_like(y))
    for a in (y, h, c, dx, dh0, dc0, *lstm.grads.values()):
        assert a.dtype == np.float32


def test_backward_uses_up_forward(rng):
    lstm = LSTM(2, 3)
    x = rng.standard_normal((4, 1, 2)).astype(np.float32)
    with pytest.raises(RuntimeError, match="needs the activations of a forward"):
        lstm.backward(np.ones((4, 1, 3), np.float32))
    lstm.forward(x, train=False)
    with pytest.raises(RuntimeError, match="forward\\(\\.\\.\\., train=True\\)"):
        lstm.backward(np.ones((4, 1, 3), np.float32))
    lstm.forward(x)
    lstm.backward(np.ones((4, 1, 3), np.float32))
    with pytest.raises(RuntimeError, match="call forward\\(\\) again"):
        lstm.backward(np.ones((4, 1, 3), np.float32))


def test_caller_arrays_are_neither_changed_nor_aliased(rng):
    lstm = LSTM(2, 3, dtype="float64", seed=0)
    x = rng.standard_normal((4, 2, 2))
    h0 = rng.standard_normal((1, 2, 3))
    dy = rng.standard_normal((4, 2, 3))
    keep = [a.copy() for a in (x, h0, dy)]
    y, _ = lstm.forward(x, (h0, h0))
    x[...] = 0          # changing the input after forward must not change the gradients
    lstm.backward(dy)
    first = {k: v.copy() for k, v in lstm.grads.items()}
    x[...] = keep[0]
    y2, _ = lstm.forward(x, (h0, h0))
    y[...] = 0          # nor may the returned output be a view of kept state
    lstm.zero_grad()
    lstm.backward(dy)
    for name in first:
        np.testing.assert_array_equal(lstm.grads[name], first[name])
    for a, b in zip((x, h0, dy), keep):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, match", [
    (np.ones((4, 2, 5), np.float32), r"x must have 3 features \(input_size\).*\(4, 2, 5\)"),
    (np.ones((4, 3), np.float64), "x has dtype float64 but the layer computes in float32"),
    (np.ones((4, 2, 3), np.int64), r"x has dtype int64 but must be floating point \(float32"),
    (np.ones((4,), np.float32), r"x must have 2 or 3 dimensions, got shape \(4,\)"),
    (np.ones((0, 2, 3), np.float32), r"x has no time steps \(T = 0"),
    (np.ones((4, 0, 3), np.float32), r"x is an empty batch \(B = 0"),
    ("abc", "x must be an array"),
])
def test_bad_inputs_name_the_argument(bad, match):
    lstm = LSTM(3, 4)
    with pytest.raises((ValueError, TypeError), match=match):
        lstm.forward(bad)


def test_bad_state_and_gradients_name_the_argument():
    lstm = LSTM(3, 4, num_layers=2)
    x = np.ones((5, 2, 3), np.float32)
    good = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"state\[0\] \(h0\) must have shape \(2, 2, 4\)"):
        lstm.forward(x, (np.zeros((1, 2, 4), np.float32), good))
    with pytest.raises(TypeError, match=r"state must be a pair \(h0, c0\) or None, got ndarray"):
        lstm.forward(x, good)
    y, _ = lstm.forward(x)
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2, 4\)"):
        lstm.backward(np.ones((5, 2, 8), np.float32))
    with pytest.raises(ValueError, match=r"dstate\[1\] \(dc_n\) must have shape"):
        lstm.backward(None, (None, np.ones((2, 3, 4), np.float32)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_size=0, hidden_size=4), "input_size must be a positive integer"),
    (dict(input_size=3, hidden_size=2.5), "hidden_size must be a positive integer"),
    (dict(input_size=3, hidden_size=4, num_layers=0), "num_layers must be a positive integer"),
    (dict(input_size=3, hidden_size=4, bidirectional="yes"), "bidirectional must be True or False"),
    (dict(input_size=3, hidden_size=4, dtype="float16"), "dtype must be one of"),
    (dict(input_size=3, hidden_size=4, device="tpu"), "unknown device 'tpu'"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LSTM(**kwargs)


def test_load_params_checks_names_shapes_and_values():
    lstm = LSTM(3, 4, dtype="float64", seed=0)
    good = lstm.state_dict()
    with pytest.raises(ValueError, match=r"do not match this LSTM: missing \['bias_hh_l0'\]$"):
        lstm.load_params({k: v for k, v in good.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match=r"do not match this LSTM: unexpected \['weight_ih_l1'\]$"):
        lstm.load_params({**good, "weight_ih_l1": good["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] must have shape \(16, 4\)"):
        lstm.load_params({**good, "weight_hh_l0": np.zeros((16, 3))})
    bad = good["bias_ih_l0"].copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"params\['bias_ih_l0'\] contains NaN or Inf"):
        lstm.load_params({**good, "bias_ih_l0": bad})
    # nothing was changed by the failed loads
    for name, value in lstm.state_dict().items():
        np.testing.assert_array_equal(value, good[name])
    # another float precision is converted; arrays keep their identity
    before = lstm.params["weight_ih_l0"]
    lstm.load_params({k: (v * 2).astype(np.float32) for k, v in good.items()})
    assert lstm.params["weight_ih_l0"] is before
    np.testing.assert_allclose(before, (good["weight_ih_l0"] * 2).astype(np.float32))


def test_to_numpy_and_to_are_harmless_on_cpu():
    a = np.arange(3.0)
    assert lstm_xp.to_numpy(a) is a
    lstm = LSTM(2, 3)
    assert lstm.to("cpu") is lstm and lstm.device == "cpu"


def test_linear_and_losses_reject_bad_arguments():
    lin = Linear(3, 2)
    with pytest.raises(ValueError, match=r"x must have 3 features \(in_features\)"):
        lin.forward(np.ones((4, 2), np.float32))
    with pytest.raises(RuntimeError, match="needs the activations of a forward"):
        lin.backward(np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"target must have shape \(4, 2\)"):
        MSELoss().forward(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32))
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\), got values from 0 to 3"):
        ce.forward(np.ones((4, 3), np.float32), np.array([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        ce.forward(np.ones((4, 3), np.float32), np.array([0.0, 1, 2, 0]))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        SGD([lin], lr=-1)
    with pytest.raises(TypeError, match=r"layers\[0\] must have .params and .grads"):
        Adam([object()])
    with pytest.raises(ValueError, match="max_norm must be"):
        clip_grad_norm([lin], 0)


def test_sgd_decay_and_clipping_do_what_they_say():
    lin = Linear(2, 1, bias=False, dtype="float64", seed=0)
    w0 = lin.params["weight"].copy()
    opt = SGD([lin], lr=0.5, decay=1.0)
    lin.grads["weight"][...] = 1.0
    opt.step()                                   # lr_1 = 0.5
    lin.grads["weight"][...] = 1.0
    opt.step()                                   # lr_2 = 0.5 / 2
    np.testing.assert_allclose(lin.params["weight"], w0 - 0.75)
    lin.grads["weight"][...] = [[3.0, 4.0]]      # norm 5
    norm = clip_grad_norm([lin], 1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(lin.grads["weight"], [[0.6, 0.8]])
    clip_grad_norm([lin], 10.0)                  # below the limit: unchanged
    np.testing.assert_allclose(lin.grads["weight"], [[0.6, 0.8]])
