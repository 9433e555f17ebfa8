"""The quantile head's pieces: the pinball loss and the monotone (non-crossing) quantile
layer. Witnesses: central differences, a naive loop written from the definition, PyTorch
autograd of the same formulas, and the loss's defining property (its minimiser over a
constant is the sample quantile)."""

import numpy as np
import pytest

from cases import numeric_gradient
from lstm_xp import MonotoneQuantiles, PinballLoss

TAUS = [0.1, 0.5, 0.9]


def naive_pinball(pred, target, taus):
    """The definition, one element at a time."""
    total, n = 0.0, 0
    for idx in np.ndindex(pred.shape):
        e = target[idx[:-1]] - pred[idx]
        tau = taus[idx[-1]]
        total += tau * e if e >= 0 else (tau - 1) * e
        n += 1
    return total / n


def naive_monotone(z):
    """q_1 = z_1, q_k = q_{k-1} + log(1 + exp(z_k)), one element at a time."""
    q = np.empty_like(z)
    for idx in np.ndindex(z.shape[:-1]):
        q[idx + (0,)] = z[idx + (0,)]
        for k in range(1, z.shape[-1]):
            q[idx + (k,)] = q[idx + (k - 1,)] + np.log1p(np.exp(z[idx + (k,)]))
    return q


def central_difference(f, x):
    """dF/dx by central differences of ``f(x)`` (``x`` perturbed in place)."""
    return numeric_gradient(lambda: f(x), x)


# ------------------------------------------------------------------- pinball loss
def test_pinball_value_matches_the_definition(rng):
    pred, target = rng.standard_normal((4, 3, 3)), rng.standard_normal((4, 3))
    value = float(PinballLoss(TAUS).forward(pred, target))
    assert value == pytest.approx(naive_pinball(pred, target, TAUS), rel=1e-13)


def test_pinball_gradient_matches_central_differences(rng):
    pred, target = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2))
    loss = PinballLoss(TAUS)
    loss.forward(pred, target)
    grad = loss.backward()
    numeric = central_difference(lambda p: naive_pinball(p, target, TAUS), pred.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_pinball_gradient_at_a_tie_is_the_mean_of_the_one_sided_slopes():
    pred = np.array([[0.3, 0.3, 0.3]])
    target = np.array([0.3])                      # e = 0 for every quantile: the kink
    loss = PinballLoss(TAUS)
    loss.forward(pred, target)
    numeric = central_difference(lambda p: naive_pinball(p, target, TAUS), pred.copy())
    np.testing.assert_allclose(loss.backward(), numeric, atol=1e-9)
    np.testing.assert_allclose(numeric[0], (0.5 - np.array(TAUS)) / 3, atol=1e-9)


def test_pinball_matches_torch_autograd(torch, rng):
    pred, target = rng.standard_normal((6, 4, 3)), rng.standard_normal((6, 4))
    loss = PinballLoss(TAUS)
    value = float(loss.forward(pred, target))
    grad = loss.backward()
    p = torch.tensor(pred, requires_grad=True)
    e = torch.tensor(target)[..., None] - p
    tau = torch.tensor(TAUS, dtype=torch.float64)
    ref = torch.maximum(tau * e, (tau - 1) * e).mean()
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-14)
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-14, atol=1e-16)


def test_pinball_minimiser_over_a_constant_is_the_sample_quantile(rng):
    """Koenker & Bassett: argmin_c sum rho_tau(y - c) is a tau-quantile of y."""
    y = rng.standard_normal(1001)
    grid = np.linspace(-3, 3, 6001)
    for tau in (0.1, 0.5, 0.9):
        loss = PinballLoss([tau])
        values = [float(loss.forward(np.full((len(y), 1), c), y)) for c in grid]
        best = grid[int(np.argmin(values))]
        assert best == pytest.approx(np.quantile(y, tau, method="inverted_cdf"), abs=1e-3)


def test_pinball_keeps_float32(rng):
    pred = rng.standard_normal((3, 2)).astype(np.float32)
    loss = PinballLoss([0.2, 0.8])
    assert loss.forward(pred, np.zeros(3, np.float32)).dtype == np.float32
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize("bad, says", [
    ([0.5, 0.1], "strictly increasing"), ([0.0, 0.5], r"in \(0, 1\)"),
    ([0.5, 1.0], r"in \(0, 1\)"), ([], "non-empty"), ([0.2, 0.2], "strictly increasing")])
def test_pinball_refuses_bad_levels(bad, says):
    with pytest.raises(ValueError, match=says):
        PinballLoss(bad)


def test_pinball_refuses_mismatched_shapes(rng):
    loss = PinballLoss(TAUS)
    with pytest.raises(ValueError, match="pred must hold the 3 quantiles"):
        loss.forward(rng.standard_normal((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="target must have shape"):
        loss.forward(rng.standard_normal((4, 3)), np.zeros(5))
    with pytest.raises(RuntimeError, match="needs a forward"):
        PinballLoss(TAUS).backward()


# ---------------------------------------------------------- monotone quantiles
def test_monotone_quantiles_match_the_definition_and_never_cross(rng):
    z = 5 * rng.standard_normal((7, 4, 5))
    q = MonotoneQuantiles().forward(z, train=False)
    np.testing.assert_allclose(q, naive_monotone(z), rtol=1e-13)
    assert np.all(np.diff(q, axis=-1) > 0)


def test_monotone_quantiles_do_not_overflow():
    z = np.array([[0.0, 800.0, -800.0]])
    layer = MonotoneQuantiles()
    with np.errstate(over="raise", invalid="raise"):     # no overflow, not even a warning
        q = layer.forward(z)
        dz = layer.backward(np.ones_like(z))
    assert np.all(np.isfinite(q)) and q[0, 1] == pytest.approx(800.0)
    np.testing.assert_allclose(dz, [[3.0, 2.0, 0.0]], atol=1e-300)


def test_monotone_quantiles_gradient_matches_central_differences(rng):
    z, w = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    layer = MonotoneQuantiles()
    layer.forward(z)
    grad = layer.backward(w)
    numeric = central_difference(lambda v: float(np.sum(naive_monotone(v) * w)), z.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_monotone_quantiles_match_torch_autograd(torch, rng):
    z, w = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    layer = MonotoneQuantiles()
    q = layer.forward(z)
    dz = layer.backward(w)
    t = torch.tensor(z, requires_grad=True)
    steps = torch.cat([t[:, :1], torch.nn.functional.softplus(t[:, 1:])], dim=1)
    ref = torch.cumsum(steps, dim=1)
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(q, ref.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(dz, t.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_head_of_linear_and_monotone_quantiles_learns_the_quantiles_of_noise(rng):
    """End to end: a constant input, the pinball loss, plain gradient descent on the
    head's bias -> the quantiles of N(0, 1) noise."""
    from lstm_xp import SGD, Linear
    head, mono = Linear(1, 3, dtype="float64", seed=0), MonotoneQuantiles()
    opt = SGD([head], lr=0.5, momentum=0.9)
    loss = PinballLoss(TAUS)
    y = rng.standard_normal(4000)
    x = np.ones((len(y), 1))
    for _ in range(400):
        head.zero_grad()
        loss.forward(mono.forward(head.forward(x)), y)
        head.backward(mono.backward(loss.backward()))
        opt.step()
    q = mono.forward(head.forward(x[:1], train=False), train=False)[0]
    np.testing.assert_allclose(q, np.quantile(y, TAUS), atol=0.03)


def test_monotone_quantiles_on_the_strict_backend(strict, rng):
    z, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    layer = MonotoneQuantiles(device=strict.name)
    q = layer.forward(strict.asarray(z))
    dz = layer.backward(strict.asarray(w))
    assert strict.owns(q) and strict.owns(dz)
    np.testing.assert_allclose(strict.to_numpy(q), naive_monotone(z), rtol=1e-13)
    loss = PinballLoss(TAUS[:2] + [0.95, 0.99])
    value = loss.forward(q, strict.asarray(np.zeros(3)))
    assert strict.owns(value) and strict.owns(loss.backward())
