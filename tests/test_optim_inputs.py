"""Bad inputs to the optimizers and to gradient clipping: what they get, and what they leave.

torch's spellings that cannot work here (``Adam(lstm.parameters())``) are refused with the
reason; clipping never turns finite gradients into NaN; ``Optimizer.load_state_dict`` checks
the whole state before changing anything; numbers too large for a float are refused by name.
"""

import math

import numpy as np
import pytest

from lstm_xp import LSTM, SGD, Adam, AdamW, Linear, clip_grad_norm
from lstm_xp.optim import MAX_STEPS

OPTIMIZERS = (SGD, Adam, AdamW)
HUGE = 10**400                                   # beyond float's range: float(HUGE) overflows
HUGE_SHOWN = "10000000000000000000...(401 characters)"


def _run_backward(dtype="float32", seed=0):
    """An LSTM(3, 4) with the gradients of one forward and backward."""
    lstm = LSTM(3, 4, dtype=dtype, seed=seed)
    x = np.random.default_rng(seed).standard_normal((5, 2, 3)).astype(dtype)
    y, _ = lstm.forward(x)
    lstm.backward(np.ones_like(y))
    return lstm


def _grads(layer) -> dict:
    return {k: np.array(v) for k, v in layer.grads.items()}


# ---------------------------------------------------------------- layers, not arrays

@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("given, got", [
    (lambda lstm: lstm.parameters(), "generator of ndarray"),
    (lambda lstm: list(lstm.parameters()), "list of ndarray"),
    (lambda lstm: tuple(lstm.parameters()), "tuple of ndarray"),
    (lambda lstm: lstm.named_parameters(), "generator of tuple"),
    (lambda lstm: lstm.params, "dict"),
    (lambda lstm: lstm.state_dict(), "dict"),
    (lambda lstm: lstm.params["weight_ih_l0"], "ndarray"),
], ids=["parameters()", "list", "tuple", "named_parameters()", "params", "state_dict()",
        "one array"])
def test_optimizers_take_layers_not_bare_arrays(cls, given, got):
    lstm = LSTM(3, 4, seed=0)
    name = cls.__name__
    with pytest.raises(TypeError) as caught:
        cls(given(lstm), lr=1e-3)
    assert str(caught.value) == (
        f"{name} takes the layers to update, e.g. {name}([lstm, head], lr=...), not "
        f"lstm.parameters(): an optimizer reads each layer's .params and .grads, and bare "
        f"arrays carry no gradients; got {got}")


@pytest.mark.parametrize("given, got", [
    (lambda lstm: lstm.parameters(), "generator of ndarray"),
    (lambda lstm: list(lstm.parameters()), "list of ndarray"),
    (lambda lstm: lstm.grads, "dict"),
])
def test_clip_grad_norm_takes_layers_not_bare_arrays(given, got):
    lstm = _run_backward()
    before = _grads(lstm)
    with pytest.raises(TypeError) as caught:
        clip_grad_norm(given(lstm), 1.0)
    assert str(caught.value) == (
        "clip_grad_norm takes the layers whose gradients to clip, e.g. "
        "clip_grad_norm([lstm, head], max_norm=1.0), not lstm.parameters(): it scales each "
        f"layer's .grads, and bare arrays carry no gradients; got {got}")
    for k, g in before.items():
        np.testing.assert_array_equal(lstm.grads[k], g)


@pytest.mark.parametrize("call, message", [
    (lambda lstm: Adam([lstm, 3]), "layers[1] must have .params and .grads dicts, got int"),
    (lambda lstm: SGD([object()]), "layers[0] must have .params and .grads dicts, got object"),
    (lambda lstm: AdamW("lstm"), "layers[0] must have .params and .grads dicts, got str"),
    (lambda lstm: clip_grad_norm([lstm, None], 1.0),
     "layers[1] must have .params and .grads dicts, got NoneType"),
    (lambda lstm: Adam({lstm}),
     "Adam takes the layers in a list, not a set: their order names the saved state "
     "('0.weight_ih_l0.m' is layer 0's), and a set's order changes from run to run"),
])
def test_other_wrong_layers_are_named(call, message):
    with pytest.raises(TypeError) as caught:
        call(LSTM(3, 4))
    assert str(caught.value) == message


def test_one_layer_a_tuple_or_a_generator_of_layers_still_work():
    lstm, head = LSTM(3, 4, seed=0), Linear(4, 1, seed=1)
    assert Adam(lstm).layers == [lstm]
    assert SGD((lstm, head)).layers == [lstm, head]
    assert AdamW(layer for layer in (lstm, head)).layers == [lstm, head]
    lstm = _run_backward("float64")
    norm = clip_grad_norm(lstm, 1e-3)              # a single layer, not in a list
    flat = np.concatenate([g.ravel() for g in lstm.grads.values()])
    assert float(norm) > 1e-3
    assert math.sqrt(float(np.sum(flat**2))) == pytest.approx(1e-3, rel=1e-12)
    before = {k: np.array(v) for k, v in lstm.params.items()}
    Adam(lstm, lr=0.1).step()
    assert all(not np.array_equal(lstm.params[k], v) for k, v in before.items())


# ---------------------------------------------------------------- clipping without NaN

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_optimizer", [False, True], ids=["arrays", "flat buffer"])
@pytest.mark.parametrize("max_norm", [1e39, 1e300, 1.7976931348623157e308])
def test_a_huge_max_norm_leaves_the_gradients_bitwise_unchanged(dtype, with_optimizer,
                                                                 max_norm):
    lstm = _run_backward(dtype)
    if with_optimizer:
        Adam([lstm])                               # gradients now views of one flat buffer
    before = _grads(lstm)
    flat = np.concatenate([g.ravel().astype(np.float64) for g in before.values()])
    norm = clip_grad_norm([lstm], max_norm)
    for k, g in before.items():
        assert lstm.grads[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(lstm.grads[k], g)
    assert np.shape(norm) == () and norm.dtype == np.dtype(dtype)
    assert float(norm) > 0
    assert float(norm) == pytest.approx(math.sqrt(float(np.sum(flat**2))), rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_optimizer", [False, True], ids=["arrays", "flat buffer"])
@pytest.mark.parametrize("max_norm", [1e-300, 5e-324, 1.0, 1e39])
def test_zero_gradients_stay_zero_for_any_max_norm(dtype, with_optimizer, max_norm):
    lstm = LSTM(2, 3, dtype=dtype, seed=0)          # no backward: every gradient is zero
    if with_optimizer:
        Adam([lstm])
    norm = clip_grad_norm([lstm], max_norm)
    assert float(norm) == 0.0 and norm.dtype == np.dtype(dtype)
    for g in lstm.grads.values():
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, np.zeros(g.shape, dtype))


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("with_optimizer", [False, True], ids=["arrays", "flat buffer"])
def test_clipping_matches_an_independent_float64_computation(dtype, rtol, with_optimizer):
    lstm, head = _run_backward(dtype), Linear(4, 2, dtype=dtype, seed=3)
    head.grads["weight"][...] = np.arange(8, dtype=dtype).reshape(2, 4) - 3.5
    head.grads["bias"][...] = [7.0, -2.0]
    if with_optimizer:
        Adam([lstm, head])
    layers = [lstm, head]
    before = [np.array(g, dtype=np.float64) for layer in layers for g in layer.grads.values()]
    want_norm = math.sqrt(sum(float(np.sum(g * g)) for g in before))
    max_norm = want_norm / 3
    norm = clip_grad_norm(layers, max_norm)
    assert norm.dtype == np.dtype(dtype)
    assert float(norm) == pytest.approx(want_norm, rel=rtol)
    after = [g for layer in layers for g in layer.grads.values()]
    for got, g in zip(after, before):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, g * (max_norm / want_norm), rtol=rtol, atol=0)
    clipped = math.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in after))
    assert clipped == pytest.approx(max_norm, rel=rtol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clipping_matches_torch_clip_grad_norm_(torch, dtype):
    lstm = _run_backward(dtype)
    tensors = []
    for g in lstm.grads.values():
        t = torch.zeros(g.shape, dtype=getattr(torch, dtype), requires_grad=True)
        t.grad = torch.from_numpy(np.array(g))
        tensors.append(t)
    want_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm=0.25)
    norm = clip_grad_norm([lstm], 0.25)
    assert float(norm) == pytest.approx(float(want_norm), rel=1e-6)
    # torch scales by max_norm / (norm + 1e-6), we by max_norm / norm: the same to ~1e-6
    for got, t in zip(lstm.grads.values(), tensors):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-5, atol=0)
    # the edge cases: max_norm beyond the dtype (factor 1), a tiny max_norm, zero gradients
    for max_norm, zero in ((1e39, False), (1e-300, False), (1e-300, True), (1e39, True)):
        ours = _run_backward(dtype)
        grads = [np.zeros_like(g) if zero else np.array(g) for g in ours.grads.values()]
        for g, value in zip(ours.grads.values(), grads):
            g[...] = value
        tensors = [torch.zeros(g.shape, dtype=getattr(torch, dtype), requires_grad=True)
                   for g in grads]
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy())
        want_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm=max_norm)
        norm = clip_grad_norm([ours], max_norm)
        assert float(norm) == pytest.approx(float(want_norm), rel=1e-6)
        for got, t in zip(ours.grads.values(), tensors):
            assert np.all(np.isfinite(got))
            np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-5, atol=0)


def test_clipping_on_a_strict_device_keeps_the_gradients_dtype(strict):
    lstm = LSTM(3, 4, dtype="float32", seed=0, device=strict)
    x = strict.asarray(np.ones((5, 2, 3), np.float32))
    y, _ = lstm.forward(x)
    lstm.backward(strict.xp.ones_like(y))
    before = {k: strict.to_numpy(g).copy() for k, g in lstm.grads.items()}
    clip_grad_norm([lstm], 1e39)
    for k, g in before.items():
        np.testing.assert_array_equal(strict.to_numpy(lstm.grads[k]), g)
    norm = clip_grad_norm([lstm], 1e-3)
    assert lstm.grads["weight_ih_l0"].dtype == strict.xp.float32
    assert float(strict.to_numpy(norm)) > 1e-3


# ---------------------------------------------------------------- load_state_dict

def _twins(cls=Adam, **options):
    """Two equal layers and optimizers, each one step in: one to load bad states into, one
    that never sees them."""
    out = []
    for _ in range(2):
        lstm = _run_backward("float64")
        opt = cls([lstm], lr=0.01, **options)
        opt.step()
        out.append((lstm, opt))
    return out


def _same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _bad_states(good: dict) -> list:
    """(state, error, message substring) for every way a state can be wrong."""
    m = "0.weight_ih_l0.m"
    nan_m = good[m].copy()
    nan_m[1, 2] = np.nan
    inf_m = good[m].copy()
    inf_m[0, 0] = -np.inf
    steps7 = {**good, "steps": 7}                 # a good count in a state refused for
    return [                                       # another entry: the count stays unused
        (None, TypeError, "optimizer state must be a dict (what state_dict() returned), "
                          "got NoneType"),
        ([("steps", 1)], TypeError, "optimizer state must be a dict"),
        ({1: 2}, TypeError, "optimizer state keys must be strings ('steps', '<layer index>."
                            "<param name>.<slot>'), got 1"),
        ({**good, 3: np.zeros(2)}, TypeError, "keys must be strings ('steps', '<layer index>."
                                              "<param name>.<slot>'), got 3"),
        ({k: v for k, v in good.items() if k != "steps"}, ValueError,
         "optimizer state lacks 'steps'"),
        ({**good, "steps": "abc"}, TypeError,
         "optimizer state entry 'steps' must be an integer (the number of steps taken), "
         "got 'abc'"),
        ({**good, "steps": None}, TypeError, "'steps' must be an integer"),
        ({**good, "steps": float("nan")}, TypeError,
         "'steps' must be an integer (the number of steps taken), got nan"),
        ({**good, "steps": 3.0}, TypeError, "'steps' must be an integer"),
        ({**good, "steps": np.asarray(3.0)}, TypeError, "'steps' must be an integer"),
        ({**good, "steps": True}, TypeError, "'steps' must be an integer"),
        ({**good, "steps": np.arange(3)}, ValueError,
         "optimizer state entry 'steps' must be a single integer (the number of steps "
         "taken), got an array of shape (3,) and dtype int64"),
        ({**good, "steps": np.array([5])}, ValueError, "'steps' must be a single integer"),
        ({**good, "steps": -3}, ValueError,
         "optimizer state entry 'steps' must be in [0, 2**53] (the number of steps taken), "
         "got -3"),
        ({**good, "steps": np.int64(-1)}, ValueError, "'steps' must be in [0, 2**53]"),
        ({**good, "steps": HUGE}, ValueError,
         f"'steps' must be in [0, 2**53] (the number of steps taken), got {HUGE_SHOWN}"),
        ({**good, "steps": MAX_STEPS + 1}, ValueError, "got 9007199254740993"),
        ({**steps7, m: good[m][:2]}, ValueError,
         "optimizer state entry '0.weight_ih_l0.m' must have shape (16, 3) (its "
         "parameter's), got (2, 3)"),
        ({**steps7, m: good[m].astype(np.int64)}, TypeError,
         "optimizer state entry '0.weight_ih_l0.m' must be a floating-point array, "
         "got dtype int64"),
        ({**steps7, m: "zeros"}, TypeError,
         "'0.weight_ih_l0.m' must be a floating-point array, got str"),
        ({**steps7, m: nan_m}, ValueError,
         "optimizer state entry '0.weight_ih_l0.m' must hold finite values, got NaN or "
         "Inf in 1 of its 48"),
        ({**steps7, m: inf_m}, ValueError, "'0.weight_ih_l0.m' must hold finite values"),
        ({**steps7, "0.bias_hh_l0.v": -1 - good["0.bias_hh_l0.v"]}, ValueError,
         "optimizer state entry '0.bias_hh_l0.v' must be >= 0 (a running mean of squared "
         "gradients), got values down to -1"),
        ({**steps7, "0.weight_hh_l0.m.x": good["0.weight_hh_l0.m"]}, ValueError,
         "optimizer state entry '0.weight_hh_l0.m.x' names no parameter of these layers"),
        ({**steps7, "1.weight_ih_l0.m": good[m]}, ValueError,
         "'1.weight_ih_l0.m' names no parameter of these layers"),
        ({**steps7, "0.weight_ih_l0.velocity": good[m]}, ValueError,
         "optimizer state entry '0.weight_ih_l0.velocity' is for slot 'velocity', which Adam "
         "does not keep (it keeps 'm', 'v')"),
    ]


def _bad_state_ids():
    like = {"steps": np.asarray(0), "0.weight_ih_l0.m": np.zeros((16, 3)),
            "0.weight_hh_l0.m": np.zeros((16, 4)), "0.bias_hh_l0.v": np.zeros(16)}
    return [f"{i}-{message[:48]}" for i, (_, _, message) in enumerate(_bad_states(like))]


@pytest.mark.parametrize("case", range(len(_bad_state_ids())), ids=_bad_state_ids())
def test_a_refused_state_names_the_entry_and_changes_nothing(case):
    (lstm, opt), (twin_lstm, twin) = _twins()
    good = opt.state_dict()
    state, error, message = _bad_states(good)[case]
    with pytest.raises(error) as caught:
        opt.load_state_dict(state)
    assert message in str(caught.value)
    assert opt.steps == 1
    _same_state(opt.state_dict(), good)
    for layer in (lstm, twin_lstm):                # the next step: as if nothing happened
        layer.grads["weight_hh_l0"][...] = 0.5
    opt.step()
    twin.step()
    _same_state(opt.state_dict(), twin.state_dict())
    for k, p in twin_lstm.params.items():
        np.testing.assert_array_equal(lstm.params[k], p)


def test_a_state_with_a_value_beyond_the_parameters_dtype_is_refused():
    lstm = _run_backward("float32")
    opt = Adam([lstm])
    opt.step()
    good = opt.state_dict()
    big = np.full((16, 3), 1e300)                  # finite in float64, not in float32
    with pytest.raises(ValueError) as caught:
        opt.load_state_dict({**good, "0.weight_ih_l0.m": big})
    assert str(caught.value) == ("optimizer state entry '0.weight_ih_l0.m' must hold values "
                                 "within float32's range (its parameter's dtype), got values "
                                 "up to 1e+300")
    _same_state(opt.state_dict(), good)


def test_sgd_refuses_adams_slots_and_takes_its_own():
    (lstm, opt), _ = _twins(SGD, momentum=0.9)
    good = opt.state_dict()
    assert "0.weight_ih_l0.velocity" in good
    with pytest.raises(ValueError) as caught:
        opt.load_state_dict({**good, "0.weight_ih_l0.m": good["0.weight_ih_l0.velocity"]})
    assert str(caught.value) == ("optimizer state entry '0.weight_ih_l0.m' is for slot 'm', "
                                 "which SGD does not keep (it keeps 'velocity')")
    _same_state(opt.state_dict(), good)


@pytest.mark.parametrize("steps", [0, 5, np.int32(5), np.uint64(5), np.asarray(5),
                                   np.asarray(5, np.int16), MAX_STEPS],
                         ids=["0", "int", "int32", "uint64", "0-d array", "0-d int16",
                              "MAX_STEPS"])
def test_accepted_step_counts(steps):
    (lstm, opt), _ = _twins()
    good = opt.state_dict()
    opt.load_state_dict({**good, "steps": steps})
    assert opt.steps == int(steps) and type(opt.steps) is int
    _same_state({k: v for k, v in opt.state_dict().items() if k != "steps"},
                {k: v for k, v in good.items() if k != "steps"})
    opt.step()                                     # the bias corrections stay finite
    assert opt.steps == int(steps) + 1
    assert all(np.all(np.isfinite(p)) for p in lstm.params.values())


def test_round_trips_still_work_also_across_dtypes():
    (lstm, opt), (twin_lstm, twin) = _twins()
    saved = opt.state_dict()
    opt.step()
    opt.load_state_dict(saved)                     # back to the twin's state
    _same_state(opt.state_dict(), twin.state_dict())
    small = _run_backward("float32")
    opt32 = Adam([small], lr=0.01)
    opt32.load_state_dict(saved)                   # float64 state into float32 slots
    back = opt32.state_dict()
    assert back["0.weight_ih_l0.m"].dtype == np.float32
    np.testing.assert_allclose(back["0.weight_ih_l0.m"], saved["0.weight_ih_l0.m"], rtol=1e-6)
    assert int(back["steps"]) == 1


# ---------------------------------------------------------------- numbers beyond float

@pytest.mark.parametrize("cls, name", [
    (cls, name) for cls in OPTIMIZERS
    for name in ["lr", "weight_decay"] + (["momentum", "decay"] if cls is SGD else ["eps"])
], ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("value", [HUGE, -HUGE, float("nan"), float("inf")],
                         ids=["10**400", "-10**400", "nan", "inf"])
def test_numbers_beyond_float_are_refused_by_name(cls, name, value):
    bound = "> 0" if name in ("lr", "eps") else ">= 0"
    shown = {HUGE: HUGE_SHOWN, -HUGE: "-" + HUGE_SHOWN[:19] + "...(402 characters)"}.get(
        value, repr(value))
    with pytest.raises(ValueError) as caught:
        cls([LSTM(3, 4)], **{name: value})
    assert str(caught.value) == f"{name} must be a finite number {bound}, got {shown}"


@pytest.mark.parametrize("value", [HUGE, float("nan"), float("inf")])
def test_clip_grad_norm_refuses_numbers_beyond_float(value):
    lstm = _run_backward()
    before = _grads(lstm)
    shown = HUGE_SHOWN if value == HUGE else repr(value)
    with pytest.raises(ValueError) as caught:
        clip_grad_norm([lstm], value)
    assert str(caught.value) == f"max_norm must be a finite number > 0, got {shown}"
    for k, g in before.items():
        np.testing.assert_array_equal(lstm.grads[k], g)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("betas, shown", [
    ((HUGE, 0.9), f"({HUGE_SHOWN}, 0.9)"),
    ((0.9, HUGE), f"(0.9, {HUGE_SHOWN})"),
    ((0.9, float("nan")), "(0.9, nan)"),
    ((float("nan"), 0.999), "(nan, 0.999)"),
    ((0.9, float("inf")), "(0.9, inf)"),
    ((True, 0.999), "(True, 0.999)"),
    ((0.9, 1.0), "(0.9, 1.0)"),
    ((-0.1, 0.999), "(-0.1, 0.999)"),
    ((0.9,), "(0.9,)"),
    ([0.9, "a"], "[0.9, 'a']"),
    (0.9, "0.9"),
])
def test_bad_betas_are_refused_by_name(cls, betas, shown):
    with pytest.raises(ValueError) as caught:
        cls([LSTM(3, 4)], betas=betas)
    assert str(caught.value) == f"betas must be a pair (b1, b2) of numbers in [0, 1), got {shown}"
