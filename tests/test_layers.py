"""The layer contract (tapes, accumulation, modes) and the rest of torch.nn.LSTM (proj_size,
bias=False, dropout), Embedding, Dropout and the optimizers: finite differences, the naive
reference, and PyTorch where it has the same thing."""

import warnings

import numpy as np
import pytest

import naive_lstm as naive
from cases import GRID, make_problem, numeric_gradient, weighted_loss
from lstm_xp import (LSTM, SGD, Adam, AdamW, CrossEntropyLoss, Dropout, Embedding, Linear,
                     manual_seed)
from lstm_xp.job.models import SeriesForecaster
from test_torch_oracle import assert_matches_torch, torch_run


def lstm64(**kw):
    return LSTM(3, 4, dtype="float64", seed=5, **kw)


def grads_of(layer):
    return {k: v.copy() for k, v in layer.grads.items()}


# ------------------------------------------------------------------------- tapes
def test_backward_visits_forwards_last_in_first_out(rng):
    lstm = lstm64(num_layers=2)
    x1, x2 = rng.standard_normal((5, 2, 3)), rng.standard_normal((4, 3, 3))
    dy1, dy2 = rng.standard_normal((5, 2, 4)), rng.standard_normal((4, 3, 4))
    singles = []
    for x, dy in ((x1, dy1), (x2, dy2)):
        lstm.zero_grad()
        lstm.forward(x)
        singles.append((lstm.backward(dy)[0], grads_of(lstm)))
    lstm.zero_grad()
    lstm.forward(x1)
    lstm.forward(x2)
    np.testing.assert_array_equal(lstm.backward(dy2)[0], singles[1][0])   # x2's first
    np.testing.assert_array_equal(lstm.backward(dy1)[0], singles[0][0])
    for name in lstm.grads:                                                # both, summed
        np.testing.assert_allclose(lstm.grads[name], singles[0][1][name] + singles[1][1][name],
                                   rtol=1e-14, atol=1e-15)


def test_an_explicit_tape_backpropagates_its_own_forward(rng):
    lstm = lstm64()
    x1, x2 = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 3))
    dy = rng.standard_normal((5, 2, 4))
    lstm.forward(x1)
    want = lstm.backward(dy)[0]
    _, _, tape1 = lstm.forward(x1, return_tape=True)
    lstm.forward(x2)                          # a later forward (say, a validation batch)
    np.testing.assert_array_equal(lstm.backward(dy, tape=tape1)[0], want)
    assert repr(tape1) == "<Tape of LSTM: consumed>"
    with pytest.raises(RuntimeError, match="already used by a backward"):
        lstm.backward(dy, tape=tape1)
    lstm.backward(dy)                         # x2's tape is still there
    with pytest.raises(RuntimeError, match="needs the activations of a forward"):
        lstm.backward(dy)


def test_stale_and_foreign_tapes_are_refused(rng):
    lstm, other = lstm64(), lstm64()
    x, dy = rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 2, 4))
    _, _, tape = lstm.forward(x, return_tape=True)
    with pytest.raises(RuntimeError, match="made by another layer"):
        other.backward(dy, tape=tape)
    lstm.load_state_dict(lstm.state_dict())
    with pytest.raises(RuntimeError, match=r"ran before load_state_dict\(\) changed"):
        lstm.backward(dy, tape=tape)
    with pytest.raises(RuntimeError, match=r"discarded by load_state_dict\(\)"):
        lstm.backward(dy)
    _, _, tape = lstm.forward(x, return_tape=True)
    lstm.to("cpu")                           # the same device: nothing moves, tape still good
    lstm.backward(dy, tape=tape)
    with pytest.raises(TypeError, match="tape must be a tape"):
        lstm.backward(dy, tape="tape")


def test_a_bad_gradient_leaves_the_tape_for_a_corrected_call(rng):
    lstm = lstm64()
    lstm.forward(rng.standard_normal((3, 2, 3)))
    with pytest.raises(ValueError, match="dy must have shape"):
        lstm.backward(np.ones((3, 2, 5)))
    lstm.backward(np.ones((3, 2, 4)))


def test_eval_mode_keeps_nothing_and_train_false_is_one_eval_call(rng):
    lstm = lstm64(num_layers=2, dropout=0.5)
    x = rng.standard_normal((4, 2, 3))
    assert lstm.training
    lstm.eval()
    assert not lstm.training
    y1, _, tape = lstm.forward(x, return_tape=True)
    y2, _ = lstm.forward(x)
    assert tape is None and lstm._tapes == []
    np.testing.assert_array_equal(y1, y2)                  # no dropout in eval mode
    lstm.train()
    y3, _ = lstm.forward(x, train=False)                   # one eval call in training mode
    assert lstm._tapes == []
    np.testing.assert_array_equal(y3, y1)
    lstm.eval()
    lstm.forward(x, train=True)                             # one training call in eval mode
    assert len(lstm._tapes) == 1
    with pytest.raises(TypeError, match="train must be True, False or None"):
        lstm.forward(x, train="yes")


def test_many_outstanding_forwards_warn_once(rng):
    lin = Linear(2, 1)
    x = np.ones((1, 2), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(150):
            lin.forward(x)
    assert len(caught) == 1 and "waiting for backward()" in str(caught[0].message)


def test_gradients_accumulate_until_zero_grad(rng):
    lstm = lstm64(bidirectional=True)
    x, dy = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 8))
    lstm.forward(x)
    lstm.backward(dy)
    once = grads_of(lstm)
    arrays = [id(g) for g in lstm.grads.values()]
    lstm.forward(x)
    lstm.backward(dy)
    for name in once:
        np.testing.assert_allclose(lstm.grads[name], 2 * once[name], rtol=1e-15)
    lstm.zero_grad()
    assert [id(g) for g in lstm.grads.values()] == arrays        # zeroed in place
    assert not any(np.any(g) for g in lstm.grads.values())


def test_two_micro_batches_sum_to_the_whole_batch(rng):
    """Mean losses over halves, each scaled by 1/2: the gradient of the whole batch's mean."""
    lstm = lstm64()
    head = Linear(4, 5, dtype="float64", seed=1)
    x = rng.standard_normal((6, 4, 3))
    labels = rng.integers(0, 5, size=(6, 4))
    ce = CrossEntropyLoss()
    ce.forward(head.forward(lstm.forward(x)[0]), labels)
    lstm.backward(head.backward(ce.backward()))
    whole = grads_of(lstm) | {f"head.{k}": v.copy() for k, v in head.grads.items()}
    lstm.zero_grad()
    head.zero_grad()
    for half in (slice(0, 2), slice(2, 4)):
        ce.forward(head.forward(lstm.forward(x[:, half])[0]), labels[:, half])
        lstm.backward(head.backward(ce.backward() * 0.5))
    got = grads_of(lstm) | {f"head.{k}": v for k, v in head.grads.items()}
    for name in whole:
        np.testing.assert_allclose(got[name], whole[name], rtol=1e-12, atol=1e-14)


def test_models_propagate_modes_and_name_parameters_as_containers():
    model = SeriesForecaster(hidden_size=4, num_layers=2, dropout=0.2, seed=0)
    model.eval()
    assert not model.training and not model.lstm.training and not model.head.training
    model.train()
    assert model.training
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "lstm.weight_ih_l0" and names[-1] == "head.bias"
    assert set(model.grads) == set(model.params) == set(names)
    result = model.load_state_dict({"head.bias": np.zeros(1)}, strict=False)
    assert result.unexpected_keys == [] and "lstm.weight_ih_l0" in result.missing_keys
    assert float(model.head.params["bias"][0]) == 0.0


def test_named_parameters_follow_torch_order():
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    assert [n for n, _ in lstm.named_parameters()][:6] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0",
        "weight_ih_l0_reverse"]
    assert len(list(lstm.parameters())) == 20


# ------------------------------------------------------------- naive reference
@pytest.mark.parametrize("kw", [dict(proj_size=2), dict(bias=False),
                                dict(proj_size=3, bias=False, bidirectional=True),
                                dict(num_layers=3, dropout=0.4, bidirectional=True),
                                dict(num_layers=2, dropout=1.0, proj_size=2)], ids=str)
def test_options_match_the_naive_reference(kw, rng):
    layers, D = kw.get("num_layers", 2), 2 if kw.get("bidirectional") else 1
    lstm = LSTM(3, 5, num_layers=layers, dtype="float64", seed=2,
                **{k: v for k, v in kw.items() if k != "num_layers"})
    P = lstm.output_size
    T, B = 6, 3
    x = rng.standard_normal((T, B, 3))
    h0, c0 = rng.standard_normal((layers * D, B, P)), rng.standard_normal((layers * D, B, 5))
    dy = rng.standard_normal((T, B, D * P))
    dh, dc = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)
    manual_seed(7)
    y, (h_n, c_n), tape = lstm.forward(x, (h0, c0), return_tape=True)
    masks = [None if m is None else np.array(m) for m in tape.data["masks"]]
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))
    params = lstm.state_dict()
    ny, nh, nc, record = naive.forward(params, x, h0, c0, layers, D == 2, masks)
    ndx, ndh0, ndc0, ngrads = naive.backward(params, record, dy, dh, dc, layers, D == 2, 3,
                                             masks)
    for got, want in ((y, ny), (h_n, nh), (c_n, nc), (dx, ndx), (dh0, ndh0), (dc0, ndc0)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    assert set(ngrads) == set(lstm.grads)
    for name in ngrads:
        np.testing.assert_allclose(lstm.grads[name], ngrads[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)


# ---------------------------------------------------------- finite differences
FD_CASES = [
    (GRID[0], dict(proj_size=2)), (GRID[5], dict(proj_size=1)), (GRID[10], dict(proj_size=2)),
    (GRID[2], dict(bias=False)), (GRID[6], dict(bias=False, proj_size=2)),
    (GRID[5], dict(dropout=0.5)), (GRID[8], dict(dropout=0.3, proj_size=2)),
]


@pytest.mark.parametrize("case, kw", FD_CASES, ids=[f"{c}-{k}" for c, k in FD_CASES])
def test_option_gradients_match_finite_differences(case, kw, rng):
    T, I, H = 4, 3, 3
    lstm = LSTM(I, H, num_layers=case.layers, bidirectional=case.bidirectional,
                batch_first=case.batch_first, dtype="float64", seed=3, **kw)
    x, state, dy, dh, dc = make_problem(case, rng, T, I, H)
    P = lstm.output_size
    if state is not None:       # h0 and dh_n have P features
        state = (state[0][..., :P].copy(), state[1])
    dh = None if dh is None else dh[..., :P].copy()
    if dy is not None:
        D = case.directions
        dy = np.concatenate([dy[..., d * H:d * H + P] for d in range(D)], axis=-1)

    def loss():
        manual_seed(21)                  # the same dropout masks at every evaluation
        y, (h_n, c_n), tape = lstm.forward(x, state, return_tape=True)
        lstm._consume(tape)              # only the value is wanted here
        return weighted_loss(y, h_n, c_n, dy, dh, dc)

    manual_seed(21)
    lstm.forward(x, state)
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))
    grads = grads_of(lstm)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    if state is not None:
        np.testing.assert_allclose(dh0, numeric_gradient(loss, state[0]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(dc0, numeric_gradient(loss, state[1]), rtol=1e-6, atol=1e-8)
    for name, param in lstm.params.items():
        np.testing.assert_allclose(grads[name], numeric_gradient(loss, param), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


def test_projection_with_padded_lengths_matches_finite_differences(rng):
    lstm = LSTM(2, 4, proj_size=2, bidirectional=True, dtype="float64", seed=4)
    x = rng.standard_normal((5, 3, 2))
    lengths = [5, 2, 3]
    dy, dh = rng.standard_normal((5, 3, 4)), rng.standard_normal((2, 3, 2))

    def loss():
        y, (h_n, _) = lstm.forward(x, lengths=lengths, train=False)
        return float(np.sum(y * dy) + np.sum(h_n * dh))

    lstm.forward(x, lengths=lengths)
    dx, _ = lstm.backward(dy, (dh, None))
    grads = grads_of(lstm)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for name, param in lstm.params.items():
        np.testing.assert_allclose(grads[name], numeric_gradient(loss, param), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


# --------------------------------------------------------------- dropout masks
def test_dropout_masks_have_the_right_statistics_and_repeat_with_the_seed():
    lstm = LSTM(4, 64, num_layers=3, dropout=0.3, seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((20, 16, 4))
    manual_seed(5)
    _, _, tape = lstm.forward(x, return_tape=True)
    masks = tape.data["masks"]
    assert masks[-1] is None                           # none on the last layer's output
    both = np.concatenate([m.ravel() for m in masks[:2]])
    assert set(np.unique(both)) == {0.0, 1 / 0.7}
    dropped = np.mean(both == 0)
    assert abs(dropped - 0.3) < 4 * np.sqrt(0.3 * 0.7 / both.size)   # within 4 sigma
    manual_seed(5)
    _, _, again = lstm.forward(x, return_tape=True)
    for a, b in zip(masks[:2], again.data["masks"][:2]):
        np.testing.assert_array_equal(a, b)
    _, _, other = lstm.forward(x, return_tape=True)    # the generator moved on
    assert not np.array_equal(masks[0], other.data["masks"][0])


def test_dropout_layer_statistics_and_backward():
    drop = Dropout(0.25, dtype="float64")
    x = np.ones((200, 100))
    manual_seed(1)
    y = drop.forward(x)
    assert abs(np.mean(y == 0) - 0.25) < 0.01 and set(np.unique(y)) == {0.0, 1 / 0.75}
    np.testing.assert_array_equal(drop.backward(np.full_like(x, 2.0)), 2 * y)
    drop.eval()
    assert drop.forward(x) is not None and np.array_equal(drop.forward(x), x)
    assert not np.any(Dropout(1.0, dtype="float64").forward(x))
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\], got 1.5"):
        Dropout(1.5)


# --------------------------------------------------------------- Embedding
def test_embedding_sums_repeated_ids_and_checks_them():
    emb = Embedding(5, 3, dtype="float64", seed=0)
    ids = np.array([[1, 3, 1], [4, 1, 0]], dtype=np.int16)
    y = emb.forward(ids)
    assert y.shape == (2, 3, 3)
    np.testing.assert_array_equal(y[0, 0], emb.params["weight"][1])
    dy = np.arange(18.0).reshape(2, 3, 3)
    emb.backward(dy)
    want = np.zeros((5, 3))
    for b in range(2):
        for t in range(3):
            want[ids[b, t]] += dy[b, t]
    np.testing.assert_array_equal(emb.grads["weight"], want)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 5\) \(num_embeddings\), got "
                                         r"values from 0 to 5"):
        emb.forward(np.array([0, 5]))
    with pytest.raises(TypeError, match="ids must hold integers, got dtype float64"):
        emb.forward(np.array([0.0, 1.0]))


def test_generic_index_add_matches_numpy(rng):
    from backends import Backend
    generic = Backend("generic", np)
    target = rng.standard_normal((6, 4))
    index = np.array([0, 5, 0, 2, 5, 5])
    values = rng.standard_normal((6, 4))
    want = target.copy()
    np.add.at(want, index, values)
    generic.index_add(target, index, values)
    np.testing.assert_allclose(target, want, rtol=1e-14)


# ------------------------------------------------------------- inputs, seeds
def test_construction_errors_name_the_option():
    with pytest.raises(ValueError, match=r"proj_size must be an integer in \[0, hidden_size\) "
                                         r"= \[0, 4\), got 4"):
        LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\], got -0.1"):
        LSTM(3, 4, num_layers=2, dropout=-0.1)
    with pytest.raises(TypeError, match="bias must be True or False"):
        LSTM(3, 4, bias=None)
    with pytest.warns(UserWarning, match="with num_layers=1 it does nothing"):
        LSTM(3, 4, dropout=0.5)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum > 0"):
        SGD([Linear(2, 1)], nesterov=True)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        manual_seed(-1)


# ------------------------------------------------------------------- PyTorch
def torch_twin(torch, I, H, **kw):
    layers = kw.pop("num_layers", 1)
    ref = torch.nn.LSTM(I, H, num_layers=layers, dtype=torch.float64, **kw)
    ours = LSTM(I, H, num_layers=layers, dtype="float64", **kw)
    ours.load_state_dict(ref.state_dict())              # torch tensors, as they are
    return ref, ours


PROJ_CASES = [c for c in GRID if c.layers <= 2]


@pytest.mark.parametrize("case", PROJ_CASES, ids=str)
def test_proj_size_matches_torch(torch, case, rng):
    T, I, H, P = 6, 4, 5, 3
    torch.manual_seed(0)
    ref, ours = torch_twin(torch, I, H, num_layers=case.layers, proj_size=P,
                           bidirectional=case.bidirectional, batch_first=case.batch_first)
    x, state, dy, dh, dc = make_problem(case, rng, T, I, H)
    D = case.directions
    if state is not None:
        state = (state[0][..., :P].copy(), state[1])
    dh = None if dh is None else dh[..., :P].copy()
    dy = None if dy is None else dy[..., :D * P].copy()
    assert_matches_torch(torch, ref, ours, x, state, dy, dh, dc)


@pytest.mark.parametrize("kw", [dict(bias=False), dict(bias=False, num_layers=2,
                                                       bidirectional=True, proj_size=2)], ids=str)
def test_bias_false_matches_torch(torch, kw, rng):
    torch.manual_seed(1)
    ref, ours = torch_twin(torch, 3, 4, **kw)
    assert not any("bias" in name for name in ours.params)
    x = rng.standard_normal((5, 2, 3))
    D, P = 2 if kw.get("bidirectional") else 1, kw.get("proj_size") or 4
    dy = rng.standard_normal((5, 2, D * P))
    want = torch_run(torch, ref, x, None, dy, None, None)
    y, _ = ours.forward(x)
    dx, _ = ours.backward(dy)
    np.testing.assert_allclose(y, want["y"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dx, want["dx"], rtol=1e-10, atol=1e-13)
    for name, g in ours.grads.items():
        np.testing.assert_allclose(g, want[f"grad:{name}"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("p, mode", [(0.0, "train"), (1.0, "train"), (0.5, "eval"),
                                     (1.0, "eval")])
def test_dropout_limits_and_eval_mode_match_torch(torch, p, mode, rng):
    torch.manual_seed(2)
    ref, ours = torch_twin(torch, 3, 4, num_layers=3, dropout=p, bidirectional=True)
    getattr(ref, mode)()
    getattr(ours, mode)()
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    dh = rng.standard_normal((6, 2, 4))
    want = torch_run(torch, ref, x, None, dy, dh, None)
    y, (h_n, _) = ours.forward(x)
    np.testing.assert_allclose(y, want["y"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(h_n, want["h_n"], rtol=1e-10, atol=1e-13)
    if mode == "eval":              # an eval-mode forward keeps no tape: outputs only
        return
    dx, _ = ours.backward(dy, (dh, None))
    np.testing.assert_allclose(dx, want["dx"], rtol=1e-10, atol=1e-13)
    for name, g in ours.grads.items():
        np.testing.assert_allclose(g, want[f"grad:{name}"], rtol=1e-10, atol=1e-13)


def test_weight_sharing_matches_torch(torch, rng):
    """One LSTM on two inputs, the losses summed: torch's gradients."""
    torch.manual_seed(3)
    ref, ours = torch_twin(torch, 3, 4, num_layers=2)
    x1, x2 = rng.standard_normal((5, 2, 3)), rng.standard_normal((3, 4, 3))
    dy1, dy2 = rng.standard_normal((5, 2, 4)), rng.standard_normal((3, 4, 4))
    loss = sum((ref(torch.tensor(x))[0] * torch.tensor(dy)).sum()
               for x, dy in ((x1, dy1), (x2, dy2)))
    loss.backward()
    ours.forward(x1)
    ours.forward(x2)
    ours.backward(dy2)
    ours.backward(dy1)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_torch_tensors_are_accepted_as_inputs(torch, rng):
    torch.manual_seed(4)
    ref, ours = torch_twin(torch, 3, 4)
    x = torch.tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    np.testing.assert_allclose(ours.forward(x, train=False)[0], ref(x)[0].detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    lin = Linear(4, 2, dtype="float64")
    lin.load_state_dict(torch.nn.Linear(4, 2, dtype=torch.float64).state_dict())


def test_embedding_and_dropout_match_torch(torch, rng):
    ref = torch.nn.Embedding(7, 3, dtype=torch.float64)
    ours = Embedding(7, 3, dtype="float64")
    ours.load_state_dict(ref.state_dict())
    ids = rng.integers(0, 7, size=(4, 5))
    dy = rng.standard_normal((4, 5, 3))
    out = ref(torch.tensor(ids))
    (out * torch.tensor(dy)).sum().backward()
    np.testing.assert_array_equal(ours.forward(ids), out.detach().numpy())
    ours.backward(dy)
    np.testing.assert_allclose(ours.grads["weight"], ref.weight.grad.numpy(), rtol=1e-14)
    x = torch.tensor(rng.standard_normal((3, 4)))
    for p in (0.0, 1.0):
        drop_ref, drop = torch.nn.Dropout(p), Dropout(p, dtype="float64")
        np.testing.assert_array_equal(drop.forward(x.numpy()), drop_ref(x).numpy())
    drop_ref.eval()
    drop.eval()
    np.testing.assert_array_equal(drop.forward(x.numpy()), drop_ref(x).numpy())
    init = Embedding(400, 50, seed=0).params["weight"]          # N(0, 1), as torch
    assert abs(init.mean()) < 0.02 and abs(init.std() - 1) < 0.02


@pytest.mark.parametrize("kind", ["sgd_nesterov_wd", "sgd_momentum_wd", "sgd_wd", "adam_wd",
                                  "adamw", "adamw_default"])
def test_more_optimizers_match_torch(torch, kind, rng):
    """Six steps on the same gradients give torch.optim's parameters."""
    layer = Linear(4, 3, dtype="float64", seed=0)
    ref = [torch.tensor(v, requires_grad=True) for v in layer.state_dict().values()]
    ours, theirs = {
        "sgd_nesterov_wd": lambda: (SGD([layer], lr=0.1, momentum=0.8, nesterov=True,
                                        weight_decay=0.05),
                                    torch.optim.SGD(ref, lr=0.1, momentum=0.8, nesterov=True,
                                                    weight_decay=0.05)),
        "sgd_momentum_wd": lambda: (SGD([layer], lr=0.1, momentum=0.9, weight_decay=0.1),
                                    torch.optim.SGD(ref, lr=0.1, momentum=0.9,
                                                    weight_decay=0.1)),
        "sgd_wd": lambda: (SGD([layer], lr=0.1, weight_decay=0.2),
                           torch.optim.SGD(ref, lr=0.1, weight_decay=0.2)),
        "adam_wd": lambda: (Adam([layer], lr=0.01, weight_decay=0.1),
                            torch.optim.Adam(ref, lr=0.01, weight_decay=0.1)),
        "adamw": lambda: (AdamW([layer], lr=0.01, betas=(0.8, 0.99), weight_decay=0.3),
                          torch.optim.AdamW(ref, lr=0.01, betas=(0.8, 0.99), weight_decay=0.3)),
        "adamw_default": lambda: (AdamW([layer]), torch.optim.AdamW(ref)),
    }[kind]()
    for _ in range(6):
        ours.zero_grad()
        assert not any(np.any(g) for g in layer.grads.values())
        for name, t in zip(layer.params, ref):
            g = rng.standard_normal(t.shape)
            layer.grads[name] += g
            t.grad = torch.tensor(g)
        ours.step()
        theirs.step()
    for name, t in zip(layer.params, ref):
        np.testing.assert_allclose(layer.params[name], t.detach().numpy(), rtol=1e-12,
                                   atol=1e-14, err_msg=name)


def test_a_container_loads_all_its_layers_or_none():
    a, b = SeriesForecaster(hidden_size=4, seed=0), SeriesForecaster(hidden_size=4, seed=1)
    before = a.state_dict()
    broken = b.state_dict()
    del broken["head.bias"]
    with pytest.raises(ValueError, match=r"params do not match this Linear: missing "
                                         r"\['head.bias'\]"):
        a.load_state_dict(broken)
    for name, value in a.state_dict().items():           # the LSTM was not loaded either
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    a.head.forward(np.ones((2, 4), np.float32))
    only_lstm = {k: v for k, v in b.state_dict().items() if k.startswith("lstm.")}
    result = a.load_state_dict({**only_lstm, "lstm": 1.0}, strict=False)
    assert result.unexpected_keys == ["lstm"] and result.missing_keys == ["head.weight",
                                                                          "head.bias"]
    a.head.backward(np.ones((2, 1), np.float32))         # the head, given nothing, kept its tape
    with pytest.raises(ValueError, match=r"parameters for no layer of this model: \['lstm'\]"):
        a.load_state_dict({**b.state_dict(), "lstm": 1.0})


def test_an_optimizer_step_makes_waiting_tapes_stale(rng):
    lstm = lstm64()
    opt = SGD([lstm], lr=0.1)
    x, dy = rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 2, 4))
    lstm.forward(x)
    _, _, first = lstm.forward(x, return_tape=True)
    lstm.backward(dy, tape=first)
    opt.step()                                   # the other forward saw the old weights
    with pytest.raises(RuntimeError, match=r"discarded by an optimizer step"):
        lstm.backward(dy)
    lstm.forward(x)
    lstm.backward(dy)
    opt.step()                                   # nothing waiting: nothing to refuse
    lstm.forward(x)
    lstm.backward(dy)


def test_moving_a_layer_makes_its_tapes_stale(strict, rng):
    lstm = lstm64()
    x, dy = rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 2, 4))
    _, _, tape = lstm.forward(x, return_tape=True)
    lstm.to(strict)                                   # another device: the arrays moved
    with pytest.raises(RuntimeError, match=r"ran before to\(\) changed the parameters"):
        lstm.backward(dy, tape=tape)
    lstm.forward(x)
    dx, _ = lstm.backward(dy)                         # a fresh forward on the new device works
    assert strict.owns(dx)
