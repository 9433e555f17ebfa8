"""Flat parameter buffers (lstm_xp.flat) and the fused optimizer primitives.

An optimizer puts a model's parameters and gradients in one buffer each; the layers' dicts
then hold views, every value is unchanged, and a step, the gradient norm, clipping and
zero_grad cost one call per buffer however many parameter arrays the model has. The
NumPy backend's in-place optimizer steps equal the generic ``xp`` formulas.
"""

import numpy as np
import pytest

from backends import Backend, get_backend
from lstm_xp import LSTM, SGD, Adam, AdamW, Linear, clip_grad_norm
from lstm_xp.optim import global_grad_norm
from lstm_xp.flat import flatten
from cases import OPTIMIZER_KINDS, optimizer_steps
from lstm_xp.job.models import CharModel

GENERIC = Backend("generic-numpy", np)


def _fill_grads(model, rng):
    for g in model.grads.values():
        g[...] = rng.standard_normal(g.shape)


def test_an_optimizer_puts_a_model_in_one_buffer_and_changes_no_value(rng):
    model = CharModel(7, hidden_size=5, num_layers=2, dtype="float64", seed=0)
    before = {k: np.array(v) for k, v in model.params.items()}
    _fill_grads(model, rng)
    grads_before = {k: np.array(v) for k, v in model.grads.items()}
    Adam(model.optimizable(), lr=0.1)
    (group,) = flatten(model.optimizable())
    assert group.params.shape == (model.num_params(),)
    for name, p in model.params.items():
        np.testing.assert_array_equal(p, before[name])
        np.testing.assert_array_equal(model.grads[name], grads_before[name])
        assert np.shares_memory(p, group.params)
        assert np.shares_memory(model.grads[name], group.grads)
    # the layers write through the views: a backward lands in the flat buffer
    model.zero_grad()
    assert not np.any(group.grads)
    x = np.eye(7)[rng.integers(0, 7, (3, 4))]
    logits, _ = model.forward(x)
    model.backward(np.ones_like(logits))
    assert np.any(group.grads)
    offsets = {name: (o, s) for _, name, o, s, _ in group.views()}
    o, s = offsets["weight_ih_l0"]
    np.testing.assert_array_equal(group.grads[o:o + s],
                                  model.lstm.grads["weight_ih_l0"].reshape(-1))


@pytest.mark.parametrize("make", [lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda m: Adam(m, lr=0.01, weight_decay=0.1)],
                         ids=["sgd", "adam"])
def test_a_step_is_one_update_call_whatever_the_number_of_arrays(make, monkeypatch, rng):
    cpu = get_backend("cpu")
    calls = []
    for name in ("sgd_update", "adam_update"):
        real = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _real=real, _n=name, **k: (calls.append(_n),
                                                                            _real(*a, **k)))
    counts = []
    for layers in (1, 3):
        lstm = LSTM(4, 6, num_layers=layers, bidirectional=True, seed=0)
        head = Linear(12, 2, seed=1)
        opt = make([lstm, head])
        _fill_grads(lstm, rng)
        calls.clear()
        opt.step()
        counts.append(len(calls))
    assert counts == [1, 1]


def test_norm_clipping_and_zero_grad_through_the_flat_buffer_equal_array_by_array(rng):
    lstm = LSTM(3, 4, num_layers=2, dtype="float64", seed=0)
    head = Linear(4, 2, dtype="float64", seed=1)
    _fill_grads(lstm, rng)
    _fill_grads(head, rng)
    grads = [np.array(g) for layer in (lstm, head) for g in layer.grads.values()]
    want = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
    SGD([lstm, head], lr=0.1)                       # flattens
    np.testing.assert_allclose(float(global_grad_norm([lstm, head])), want, rtol=1e-14)
    norm = clip_grad_norm([lstm, head], max_norm=want / 2)
    np.testing.assert_allclose(float(norm), want, rtol=1e-14)
    clipped = [np.array(g) for layer in (lstm, head) for g in layer.grads.values()]
    for g0, g1 in zip(grads, clipped):
        np.testing.assert_allclose(g1, g0 / 2, rtol=1e-14)
    lstm.zero_grad()              # one layer of a two-layer group: array by array, head kept
    assert not any(np.any(g) for g in lstm.grads.values())
    assert all(np.any(g) for g in head.grads.values())


def test_moving_a_layer_rebuilds_the_buffer_and_keeps_the_state(strict, rng):
    layer = Linear(3, 2, dtype="float64", seed=0)
    opt = SGD([layer], lr=0.1, momentum=0.9)
    layer.grads["weight"][...] = 1.0
    opt.step()
    velocity = opt.state_dict()["0.weight.velocity"]
    layer.to(strict)
    (group,) = flatten([layer])
    assert strict.owns(group.params)
    np.testing.assert_array_equal(opt.state_dict()["0.weight.velocity"], velocity)


@pytest.mark.parametrize("kind", OPTIMIZER_KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_optimizer_steps_equal_the_generic_formulas(kind, dtype, rng):
    p0 = rng.standard_normal(37).astype(dtype)
    grads = [rng.standard_normal(37).astype(dtype) for _ in range(3)]
    want, got = (optimizer_steps(b, kind, p0, grads) for b in (GENERIC, get_backend("cpu")))
    assert got[0].dtype == np.dtype(dtype)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(b, a)
    assert not np.array_equal(got[0], p0)


def test_adamw_over_a_flat_model_matches_per_array_updates(rng):
    """The flat path against the formulas applied to each parameter array on its own."""
    model = CharModel(5, hidden_size=4, dtype="float64", seed=3)
    ref = {k: np.array(v) for k, v in model.params.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v = {k: np.zeros_like(a) for k, a in ref.items()}
    opt = AdamW(model.optimizable(), lr=0.01, weight_decay=0.1)
    for step in range(1, 4):
        _fill_grads(model, rng)
        for k in ref:
            GENERIC.adam_update(ref[k], np.array(model.grads[k]), m[k], v[k], step, 0.01, 0.9,
                                0.999, 1e-8, 0.1, True)
        opt.step()
    for k, want in ref.items():
        np.testing.assert_allclose(model.params[k], want, rtol=1e-13, atol=1e-15)


def test_weights_tied_by_sharing_an_array_stay_tied(rng):
    from lstm_xp import Embedding
    emb, head = Embedding(5, 3, dtype="float64", seed=0), Linear(3, 5, dtype="float64", seed=1)
    head.params["weight"] = emb.params["weight"]          # (5, 3) both: tied
    head.grads["weight"] = np.zeros((5, 3))
    opt = SGD([emb, head], lr=0.1)
    assert flatten([emb, head]) is None                   # array by array, as before
    want = np.array(emb.params["weight"])
    for _ in range(3):
        g1, g2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
        emb.grads["weight"][...], head.grads["weight"][...] = g1, g2
        opt.step()
        want -= 0.1 * (g1 + g2)                           # both uses update the one array
    assert head.params["weight"] is emb.params["weight"]
    np.testing.assert_allclose(emb.params["weight"], want, rtol=1e-14)


def test_clipping_part_of_a_model_leaves_the_optimizers_buffer_alone(rng):
    lstm, head = LSTM(3, 4, dtype="float64", seed=0), Linear(4, 2, dtype="float64", seed=1)
    opt = Adam([lstm, head], lr=0.01)
    (group,) = flatten([lstm, head])
    _fill_grads(lstm, rng)
    _fill_grads(head, rng)
    want = np.sqrt(sum(float(np.sum(np.asarray(g) ** 2)) for g in lstm.grads.values()))
    np.testing.assert_allclose(float(clip_grad_norm([lstm], 1e9)), want, rtol=1e-14)
    lstm.zero_grad()
    opt.step()
    assert flatten([lstm, head]) == [group]               # not rebuilt
    assert all(np.shares_memory(p, group.params) for p in lstm.params.values())
