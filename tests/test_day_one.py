"""What a PyTorch user does on day one: a dtype-free Dropout, shape errors in the user's own
layout, seeds that fix initialisation, a backward after an eval-mode forward, and clean
errors for Python lists, odd seeds, dtypes, keys and huge integers."""

import subprocess
import sys

import numpy as np
import pytest

from lstm_xp import LSTM, CrossEntropyLoss, Dropout, Embedding, Linear, MSELoss, manual_seed


# ------------------------------------------------------------------ Dropout has no dtype
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_returns_the_input_dtype(dtype):
    drop = Dropout(0.5)
    x = np.ones((200, 3), dtype)
    y = drop.forward(x)
    assert y.dtype == np.dtype(dtype)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < np.count_nonzero(y) < y.size
    dx = drop.backward(np.full_like(x, 3.0))
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dx, 3.0 * y)            # the same mask, dy * 2 or 0
    assert drop.forward(x, train=False).dtype == np.dtype(dtype)


def test_dropout_backward_wants_the_dtype_of_its_forward():
    drop = Dropout(0.5)
    drop.forward(np.ones(4, "float32"))
    with pytest.raises(TypeError, match="dy has dtype float64 but the last input x has dtype "
                                        "float32"):
        drop.backward(np.ones(4))
    with pytest.raises(TypeError, match="x has dtype float16 but must be float32 or float64"):
        Dropout(0.5).forward(np.ones(4, "float16"))


def test_dropout_with_an_explicit_dtype_still_refuses_the_other():
    with pytest.raises(TypeError, match="x has dtype float64 but the layer computes in float32"):
        Dropout(0.5, dtype="float32").forward(np.ones(3))


# ------------------------------------------------------------- errors in the user's layout
def test_dy_shape_errors_are_in_the_users_layout():
    x = np.ones((3, 5, 2), "float32")                       # B = 3, T = 5
    bf = LSTM(2, 4, batch_first=True)
    bf.forward(x)
    with pytest.raises(ValueError) as caught:
        bf.backward(np.ones((3, 5, 2), "float32"))
    assert str(caught.value) == ("dy must have shape (3, 5, 4) (batch, steps, num_directions "
                                 "* hidden_size), got (3, 5, 2)")
    unbatched = LSTM(2, 4, bidirectional=True, proj_size=3)
    unbatched.forward(x[0])
    with pytest.raises(ValueError) as caught:
        unbatched.backward(np.ones((5, 4), "float32"))
    assert str(caught.value) == ("dy must have shape (5, 6) (steps, num_directions * "
                                 "proj_size), got (5, 4)")
    tm = LSTM(2, 4)
    tm.forward(x)
    with pytest.raises(ValueError, match=r"dy must have shape \(3, 5, 4\) \(steps, batch, "):
        tm.backward(np.ones((5, 3, 4), "float32"))


def test_a_corrected_dy_after_a_shape_error_works():
    bf = LSTM(2, 4, batch_first=True, seed=0)
    y, _ = bf.forward(np.ones((3, 5, 2), "float32"))
    with pytest.raises(ValueError):
        bf.backward(np.ones((5, 3, 4), "float32"))         # time-major by mistake
    dx, _ = bf.backward(np.ones_like(y))
    assert dx.shape == (3, 5, 2)


# ------------------------------------------------------------------------------ seeds
def test_manual_seed_fixes_initialisation_as_torch_does():
    manual_seed(0)
    first = [LSTM(3, 4).state_dict(), Linear(4, 2).state_dict(), Embedding(5, 2).state_dict()]
    manual_seed(0)
    again = [LSTM(3, 4).state_dict(), Linear(4, 2).state_dict(), Embedding(5, 2).state_dict()]
    for a, b in zip(first, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    # each layer takes the next draws: two layers built in a row differ
    manual_seed(0)
    one, two = LSTM(3, 4), LSTM(3, 4)
    assert not np.array_equal(one.params["weight_ih_l0"], two.params["weight_ih_l0"])


def test_an_explicit_seed_ignores_manual_seed_and_other_layers():
    want = LSTM(3, 4, seed=5).state_dict()
    manual_seed(123)
    LSTM(3, 4)                                  # draws from the shared stream
    got = LSTM(3, 4, seed=5).state_dict()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_initialisation_does_not_move_the_dropout_masks():
    """Building layers between manual_seed and a forward leaves the masks as they were."""
    x = np.ones((50, 4))
    manual_seed(3)
    want = Dropout(0.5).forward(x)
    manual_seed(3)
    LSTM(3, 8), Linear(8, 2)
    np.testing.assert_array_equal(Dropout(0.5).forward(x), want)


INIT_SCRIPT = ("import sys; from lstm_xp import LSTM, manual_seed\n"
               "if sys.argv[1] == 'seeded': manual_seed(0)\n"
               "print(LSTM(2, 3).params['weight_hh_l0'].tobytes().hex())")


@pytest.mark.parametrize("mode", ["seeded", "unseeded"])
def test_seed_none_across_processes(mode):
    """seed=None after manual_seed(0) builds the same layer in every process; without
    manual_seed each process draws fresh entropy."""
    runs = [subprocess.run([sys.executable, "-c", INIT_SCRIPT, mode], capture_output=True,
                           text=True, check=True).stdout for _ in range(2)]
    assert (runs[0] == runs[1]) == (mode == "seeded")


# ------------------------------------------------------------- backward after eval mode
@pytest.mark.parametrize("how", ["eval", "train=False"])
def test_backward_after_an_eval_forward_says_so(how):
    lstm = LSTM(3, 4)
    x = np.ones((2, 1, 3), "float32")
    if how == "eval":
        lstm.eval()
        y, _ = lstm.forward(x)
    else:
        y, _ = lstm.forward(x, train=False)
    with pytest.raises(RuntimeError) as caught:
        lstm.backward(np.ones_like(y))
    assert str(caught.value) == (
        "backward() has nothing to use: the last forward ran in eval mode (lstm.eval() or "
        "train=False); call lstm.train() or forward(..., train=True) to keep what backward "
        "needs")
    lstm.train()
    lstm.forward(x)
    lstm.backward(np.ones_like(y))                   # and the advice works


def test_a_training_forward_after_an_eval_one_still_backpropagates():
    lin = Linear(3, 2)
    y = lin.forward(np.ones((4, 3), "float32"))                  # kept
    lin.forward(np.ones((4, 3), "float32"), train=False)         # eval: nothing kept
    assert lin.backward(np.ones_like(y)).shape == (4, 3)         # uses the training one
    with pytest.raises(RuntimeError, match="the last forward ran in eval mode"):
        lin.backward(np.ones_like(y))


# ---------------------------------------------------- Python lists and other odd inputs
RAGGED = [[1.0, 2.0, 3.0], [1.0, 2.0]]


def ragged_calls():
    lstm, lin, emb = LSTM(3, 4), Linear(3, 2), Embedding(4, 2)
    y, _ = lstm.forward(np.ones((2, 1, 3), "float32"))
    return {
        "x": lambda v: lstm.forward(v),
        "state[0] (h0)": lambda v: lstm.forward(np.ones((2, 1, 3), "float32"), (v, None)),
        "dy": lambda v: lstm.backward(v),
        "dstate[1] (dc_n)": lambda v: lstm.backward(None, (None, v)),
        "x ": lambda v: lin.forward(v),
        "target": lambda v: MSELoss().forward(np.ones(3, "float32"), v),
        "ids": lambda v: emb.forward(v),
        "x  ": lambda v: Dropout(0.1).forward(v),
    }


@pytest.mark.parametrize("name", list(ragged_calls()))
@pytest.mark.parametrize("value, error, message", [
    (RAGGED, ValueError, "must be a rectangular array; the nested lists given have rows of "
                         "different lengths"),
    ([["a", "b", "c"]], TypeError, "must hold real numbers, got a list of strings"),
    ([[1j, 2.0, 3.0]], TypeError, "must hold real numbers, got a list of complex numbers"),
])
def test_python_lists_get_errors_naming_the_argument(name, value, error, message):
    with pytest.raises(error) as caught:
        ragged_calls()[name](value)
    assert str(caught.value) == f"{name.strip()} {message}"


def test_cross_entropy_list_targets_are_named():
    with pytest.raises(ValueError, match="target must be a rectangular array"):
        CrossEntropyLoss().forward(np.ones((2, 3), "float32"), [[1], [1, 2]])


@pytest.mark.parametrize("make", [
    lambda s: LSTM(3, 4, seed=s), lambda s: Linear(3, 4, seed=s),
    lambda s: Embedding(3, 4, seed=s), lambda s: manual_seed(s)])
@pytest.mark.parametrize("seed", [-1, 3.0, np.array(3), "0", True])
def test_seeds_are_checked_as_manual_seed_checks_them(make, seed):
    with pytest.raises(ValueError) as caught:
        make(seed)
    assert str(caught.value) == f"seed must be an integer >= 0, got {seed!r}"


@pytest.mark.parametrize("dtype", [np.array(3), 3, np.float32(1), "int32", np.int64])
def test_dtype_that_is_not_a_float_dtype(dtype):
    with pytest.raises(ValueError) as caught:
        LSTM(3, 4, dtype=dtype)
    assert str(caught.value) == f"dtype must be one of ('float32', 'float64'), got {dtype!r}"


@pytest.mark.parametrize("key", [1, None, ("weight_ih_l0",)])
def test_state_dict_keys_must_be_strings(key):
    lstm = LSTM(3, 4)
    before = lstm.state_dict()
    with pytest.raises(TypeError) as caught:
        lstm.load_state_dict({**before, key: np.ones(3)})
    assert str(caught.value) == f"params keys must be parameter names (strings), got {key!r}"
    from lstm_xp.job.models import SeriesForecaster
    with pytest.raises(TypeError, match="params keys must be parameter names"):
        SeriesForecaster(hidden_size=4).load_state_dict({key: np.ones(3)})


@pytest.mark.parametrize("call, message", [
    (lambda: LSTM(3, 10**400), "hidden_size must be at most 2**31 - 1, got "
                               "10000000000000000000...(401 characters)"),
    (lambda: Linear(10**400, 2), "in_features must be at most 2**31 - 1, got "
                                 "10000000000000000000...(401 characters)"),
    (lambda: Embedding(2**31, 2), "num_embeddings must be at most 2**31 - 1, got 2147483648"),
    (lambda: LSTM(3, 4, forget_bias=10**400), "forget_bias must be a finite number, got "
                                              "10000000000000000000...(401 characters)"),
    (lambda: LSTM(3, 4, forget_bias=float("nan")), "forget_bias must be a finite number, got nan"),
])
def test_huge_integers_get_a_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError) as caught:
        call()
    assert str(caught.value) == message


# ------------------------------------------------------- torch's positional order, dtype=None
def test_positional_arguments_mean_what_they_mean_in_torch():
    """torch.nn.LSTM(input_size, hidden_size, num_layers, bias, batch_first, dropout,
    bidirectional, proj_size): the same positions here; the rest is keyword-only."""
    lstm = LSTM(2, 4, 2, False, True, 0.0, True, 3)
    assert (lstm.num_layers, lstm.bias, lstm.batch_first, lstm.dropout, lstm.bidirectional,
            lstm.proj_size) == (2, False, True, 0.0, True, 3)
    plain = LSTM(2, 3, 1, True, True)                    # bias, batch_first: not bidirectional
    assert plain.bias and plain.batch_first and not plain.bidirectional
    for make in (lambda: LSTM(2, 3, 1, True, False, 0.0, False, 0, "float64"),
                 lambda: Linear(3, 2, True, "float64"), lambda: Embedding(3, 2, "float64"),
                 lambda: Dropout(0.5, "float64")):
        with pytest.raises(TypeError, match="positional argument"):
            make()


@pytest.mark.parametrize("make", [lambda: LSTM(2, 3, dtype=None),
                                  lambda: Linear(2, 3, dtype=None),
                                  lambda: Embedding(2, 3, dtype=None)])
def test_layers_with_parameters_need_a_dtype(make):
    with pytest.raises(ValueError, match=r"dtype must be one of .*, got None"):
        make()


def test_a_numpy_generator_or_seed_sequence_seeds_a_layer():
    a = LSTM(2, 3, seed=np.random.SeedSequence(4)).state_dict()
    b = LSTM(2, 3, seed=np.random.default_rng(np.random.SeedSequence(4))).state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_ragged_lengths_are_named():
    with pytest.raises(ValueError, match="lengths must be a rectangular array"):
        LSTM(3, 5).forward(np.zeros((4, 2, 3), "float32"), lengths=[[1], [2, 3]])
