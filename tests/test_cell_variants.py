"""The cell variants (peephole, layer_norm, zoneout, recurrent_dropout, weight_drop).

- Forward and every gradient against an independent naive reference (tests/naive_variants.py,
  one step and one gate at a time; its gradients by the complex step), each variant and
  combinations, two layers, bidirectional, padded lengths, training mode with the masks
  lstm_xp drew, and eval mode.
- Every gradient against central finite differences with the generator re-seeded before
  each evaluation (so the masks repeat).
- Limits: zero peephole weights, eval-mode dropout variants and p = 0 are the plain LSTM;
  mask statistics; options and errors; the strict array-API backend.
"""

import numpy as np
import pytest

import naive_variants as naive
from cases import numeric_gradient, weighted_loss
from lstm_xp import LSTM, manual_seed

T, B, I, H = 4, 3, 2, 3
LENGTHS = [4, 2, 3]

VARIANTS = {
    "peephole": dict(peephole=True),
    "layer_norm": dict(layer_norm=True),
    "zoneout": dict(zoneout=(0.3, 0.6)),
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "weight_drop": dict(weight_drop=0.5),
    "peephole+layer_norm": dict(peephole=True, layer_norm=True),
    "layer_norm+zoneout": dict(layer_norm=True, zoneout=0.4),
    "all": dict(peephole=True, layer_norm=True, zoneout=(0.2, 0.5), recurrent_dropout=0.3,
                weight_drop=0.3),
}


def _lstm(kw, seed=0, **extra):
    lstm = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=seed, **kw,
                **extra)
    rng = np.random.default_rng(seed + 100)
    for name, p in lstm.params.items():     # non-trivial variant parameters
        if name.startswith(("weight_c", "ln_")):
            p[...] = rng.uniform(0.5, 1.5, p.shape) if "weight" in name else \
                rng.standard_normal(p.shape) * 0.3
    return lstm


def _problem(rng):
    x = rng.standard_normal((T, B, I))
    h0, c0 = (rng.standard_normal((4, B, H)) * 0.5 for _ in range(2))
    dy = rng.standard_normal((T, B, 2 * H))
    dh, dc = rng.standard_normal((4, B, H)), rng.standard_normal((4, B, H))
    return x, h0, c0, dy, dh, dc


def _masks(tape):
    return {(k, d): tape.data["tapes"][k][d].masks for k in range(2) for d in range(2)}


def _naive_options(kw):
    z = kw.get("zoneout", 0.0)
    return dict(peephole=kw.get("peephole", False), layer_norm=kw.get("layer_norm", False),
                zoneout=tuple(z) if isinstance(z, tuple) else (z, z))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_matches_the_naive_reference(variant, training, rng):
    kw = VARIANTS[variant]
    lstm = _lstm(kw)
    x, h0, c0, dy, dh, dc = _problem(rng)
    manual_seed(5)
    y, (h_n, c_n), tape = lstm.forward(x, (h0, c0), lengths=LENGTHS, train=True,
                                       return_tape=True)
    masks = _masks(tape)
    if not training:
        lstm._consume(tape)
        y, (h_n, c_n) = lstm.forward(x, (h0, c0), lengths=LENGTHS, train=False)
        masks = {}
    opts = _naive_options(kw)
    params = {k: np.array(v) for k, v in lstm.params.items()}
    want = naive.forward(params, x, h0, c0, 2, True, opts, masks, training, LENGTHS)
    for label, a, b in zip(("y", "h_n", "c_n"), (y, h_n, c_n), want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=label)
    if not training:
        return
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))

    def loss(values):
        p = {k: values.get(k, v) for k, v in params.items()}
        yy, hh, cc = naive.forward(p, values["x"], values["h0"], values["c0"], 2, True, opts,
                                   masks, True, LENGTHS)
        return np.sum(yy * dy) + np.sum(hh * dh) + np.sum(cc * dc)

    ref = naive.complex_step_gradients(loss, {"x": x, "h0": h0, "c0": c0, **params})
    for label, got in (("x", dx), ("h0", dh0), ("c0", dc0), *lstm.grads.items()):
        np.testing.assert_allclose(got, ref[label], rtol=1e-9, atol=1e-11, err_msg=label)


FD_CASES = ["peephole", "layer_norm", "zoneout", "recurrent_dropout", "weight_drop", "all"]


@pytest.mark.parametrize("variant", FD_CASES)
def test_variant_gradients_match_finite_differences(variant, rng):
    lstm = _lstm(VARIANTS[variant], seed=1)
    x, h0, c0, dy, dh, dc = _problem(rng)

    def loss():
        manual_seed(9)                      # the same masks at every evaluation
        y, (h_n, c_n), tape = lstm.forward(x, (h0, c0), lengths=LENGTHS, return_tape=True)
        lstm._consume(tape)
        return weighted_loss(y, h_n, c_n, dy, dh, dc)

    manual_seed(9)
    lstm.forward(x, (h0, c0), lengths=LENGTHS)
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))
    for label, got, a in (("x", dx, x), ("h0", dh0, h0), ("c0", dc0, c0)):
        np.testing.assert_allclose(got, numeric_gradient(loss, a), rtol=1e-6, atol=1e-8,
                                   err_msg=label)
    grads = {k: np.array(v) for k, v in lstm.grads.items()}
    for name, param in lstm.params.items():
        np.testing.assert_allclose(grads[name], numeric_gradient(loss, param), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


# ------------------------------------------------------------------------- limits
def _run(lstm, x, train, lengths=LENGTHS, seed=3):
    manual_seed(seed)
    y, (h_n, c_n) = lstm.forward(x, lengths=lengths, train=train)
    out = [y, h_n, c_n]
    if train:
        dx, _ = lstm.backward(np.ones_like(y))
        out += [dx] + [np.array(lstm.grads[k]) for k in sorted(lstm.grads)
                       if not k.startswith("weight_c")]       # the plain LSTM's gradients
    return out


def test_zero_peephole_weights_are_the_plain_lstm(rng):
    plain = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=2)
    peep = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=2, peephole=True)
    for name, p in plain.params.items():
        np.testing.assert_array_equal(peep.params[name], p)       # same names, same values
    assert not any(np.any(peep.params[n]) for n in peep.params if n.startswith("weight_c"))
    x = rng.standard_normal((T, B, I))
    want, got = _run(plain, x, True), _run(peep, x, True)
    assert len(want) == len(got)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(recurrent_dropout=0.5), dict(weight_drop=0.5),
                                dict(recurrent_dropout=0.3, weight_drop=0.3)], ids=str)
def test_eval_mode_dropout_variants_are_the_plain_lstm(kw, rng):
    plain = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=2)
    varied = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=2, **kw)
    x = rng.standard_normal((T, B, I))
    for a, b in zip(_run(plain, x, False), _run(varied, x, False)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert not np.allclose(_run(varied, x, True)[0], _run(plain, x, True)[0])


@pytest.mark.parametrize("kw", [dict(zoneout=0.0), dict(recurrent_dropout=0.0),
                                dict(weight_drop=0.0), dict(zoneout=(0.0, 0.0))], ids=str)
def test_rate_zero_is_the_plain_lstm_bitwise(kw, rng):
    plain = LSTM(I, H, dtype="float64", seed=2)
    varied = LSTM(I, H, dtype="float64", seed=2, **kw)
    x = rng.standard_normal((T, B, I))
    for a, b in zip(_run(plain, x, True), _run(varied, x, True)):
        np.testing.assert_array_equal(b, a)


def test_zoneout_one_keeps_the_initial_state_and_masks_have_the_right_rate(rng):
    lstm = LSTM(I, 50, zoneout=(1.0, 0.25), dtype="float64", seed=0)
    x = rng.standard_normal((40, 20, I))
    h0 = rng.standard_normal((1, 20, 50))
    c0 = rng.standard_normal((1, 20, 50))
    y, (h_n, c_n), tape = lstm.forward(x, (h0, c0), return_tape=True)
    np.testing.assert_array_equal(c_n, c0)             # p_c = 1: c never changes
    masks = tape.data["tapes"][0][0].masks
    assert set(np.unique(masks["zone_h"])) == {0.0, 1.0}
    assert abs(masks["zone_h"].mean() - 0.25) < 0.01  # 40,000 draws: 5 sigma ~ 0.011


def test_recurrent_dropout_mask_is_one_per_call_and_weight_drop_touches_only_w_hh(rng):
    lstm = LSTM(I, 40, recurrent_dropout=0.25, weight_drop=0.5, dtype="float64", seed=0)
    x = rng.standard_normal((3, 30, I))
    manual_seed(0)
    _, _, tape = lstm.forward(x, return_tape=True)
    m = tape.data["tapes"][0][0].masks
    assert m["recurrent"].shape == (30, 40) and m["weight"].shape == (160, 40)
    assert set(np.unique(m["recurrent"])) == {0.0, 1 / 0.75}
    assert abs((m["weight"] == 0).mean() - 0.5) < 0.03
    weight_before = np.array(lstm.params["weight_hh_l0"])
    lstm.backward(np.zeros((3, 30, 40)))
    np.testing.assert_array_equal(lstm.params["weight_hh_l0"], weight_before)


# ------------------------------------------------------------------ options, errors
def test_variant_parameters_have_torch_style_names_and_shapes():
    lstm = LSTM(I, H, num_layers=2, bidirectional=True, peephole=True, layer_norm=True)
    shapes = {k: tuple(v.shape) for k, v in lstm.named_parameters()}
    for sfx in ("l0", "l1_reverse"):
        assert shapes[f"weight_ci_{sfx}"] == shapes[f"weight_cf_{sfx}"] == (H,)
        assert shapes[f"weight_co_{sfx}"] == (H,)
        assert shapes[f"ln_ih_weight_{sfx}"] == shapes[f"ln_hh_weight_{sfx}"] == (4 * H,)
        assert shapes[f"ln_c_weight_{sfx}"] == shapes[f"ln_c_bias_{sfx}"] == (H,)
    plain = LSTM(I, H, num_layers=2, bidirectional=True)
    assert [k for k in shapes if k in dict(plain.named_parameters())] == \
        [k for k, _ in plain.named_parameters()]
    assert LSTM(I, H, zoneout=0.5, recurrent_dropout=0.2, weight_drop=0.1).num_params() == \
        LSTM(I, H).num_params()
    names = list(shapes)                 # each layer-direction's variant parameters follow
    assert names.index("weight_ci_l0") == names.index("bias_hh_l0") + 1   # its own


@pytest.mark.parametrize("kw, error, message", [
    (dict(zoneout=1.5), ValueError, r"zoneout must be a number in \[0, 1\]"),
    (dict(zoneout=(0.1, -0.1)), ValueError, r"zoneout\[1\] \(p_h\) must be a number"),
    (dict(zoneout=(0.1, 0.2, 0.3)), ValueError, "zoneout must be p or a pair"),
    (dict(recurrent_dropout=1.0), ValueError, r"recurrent_dropout must be a number in \[0, 1\)"),
    (dict(weight_drop=-0.1), ValueError, "weight_drop must be a number in"),
    (dict(peephole=1), TypeError, "peephole must be True or False"),
    (dict(layer_norm=True, proj_size=2), ValueError, "layer_norm with proj_size=2"),
    (dict(zoneout=0.1, proj_size=1), ValueError, "zoneout with proj_size=1"),
], ids=lambda v: str(v)[:40])
def test_bad_variant_options_name_the_option(kw, error, message):
    with pytest.raises(error, match=message):
        LSTM(I, H, **kw)


def test_a_variant_state_dict_round_trips_and_takes_plain_torch_weights_non_strictly(rng):
    lstm = _lstm(VARIANTS["all"])
    copy = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=9,
                **VARIANTS["all"])
    copy.load_state_dict(lstm.state_dict())
    x = rng.standard_normal((T, B, I))
    for a, b in zip(_run(lstm, x, False), _run(copy, x, False)):
        np.testing.assert_array_equal(a, b)
    plain = LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=4)
    keys = copy.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(keys.missing_keys) == sorted(k for k in copy.params if k not in plain.params)


def test_variants_run_unchanged_on_a_strict_array_api_device(strict, rng):
    kw = VARIANTS["all"]
    cpu = _lstm(kw)
    other = _lstm(kw).to(strict)
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, 2 * H))
    results = []
    for lstm in (cpu, other):
        manual_seed(4)
        y, _ = lstm.forward(lstm.backend.asarray(x), lengths=LENGTHS)
        dx, _ = lstm.backward(lstm.backend.asarray(dy))
        results.append([lstm.backend.to_numpy(a) for a in
                        (y, dx, *[g for g in lstm.grads.values()])])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
