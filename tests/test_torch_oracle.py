"""lstm-xp against PyTorch (CPU build): same weights by name, same inputs, same answers.

CI installs torch and sets LSTM_XP_REQUIRE_TORCH=1, so these never skip there.
"""

import numpy as np
import pytest

from cases import LOOP_FORMS, GRID, make_problem, numpy_backend
from lstm_xp import LSTM, SGD, Adam, CrossEntropyLoss, Linear, MSELoss, clip_grad_norm


def twins(torch, case, I, H, dtype: str, form: str = "tanh"):
    """A torch.nn.LSTM and our LSTM for ``case`` (NumPy, gate form ``form``), ours loaded
    with torch's weights by name."""
    ref = torch.nn.LSTM(I, H, num_layers=case.layers, bidirectional=case.bidirectional,
                        batch_first=case.batch_first, dtype=getattr(torch, dtype))
    ours = LSTM(I, H, num_layers=case.layers, bidirectional=case.bidirectional,
                batch_first=case.batch_first, dtype=dtype, device=numpy_backend(form))
    ours.load_params({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ref, ours


def torch_run(torch, ref, x, state, dy, dh, dc):
    """Outputs and gradients of <y,dy> + <h_n,dh> + <c_n,dc> through ``ref``."""
    xt = torch.tensor(x, requires_grad=True)
    inputs = [xt]
    st = None
    if state is not None:
        st = tuple(torch.tensor(s, requires_grad=True) for s in state)
        inputs += list(st)
    y, (h_n, c_n) = ref(xt, st)
    loss = sum((v * torch.tensor(w)).sum() for v, w in ((y, dy), (h_n, dh), (c_n, dc))
               if w is not None)
    names = [n for n, _ in ref.named_parameters()]
    params = [p for _, p in ref.named_parameters()]
    grads = torch.autograd.grad(loss, inputs + params)
    out = {"y": y, "h_n": h_n, "c_n": c_n, "dx": grads[0]}
    if state is not None:
        out["dh0"], out["dc0"] = grads[1], grads[2]
    out.update({f"grad:{n}": g for n, g in zip(names, grads[len(inputs):])})
    return {k: v.detach().numpy() for k, v in out.items()}


def assert_matches_torch(torch, ref, ours, x, state, dy, dh, dc):
    """Outputs, final states and every gradient of ``ours`` equal ``ref``'s to 1e-10 (float64)."""
    want = torch_run(torch, ref, x, state, dy, dh, dc)
    y, (h_n, c_n) = ours.forward(x, state)
    dx, (dh0, dc0) = ours.backward(dy, (dh, dc))
    got = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx}
    if state is not None:
        got["dh0"], got["dc0"] = dh0, dc0
    got.update({f"grad:{n}": g for n, g in ours.grads.items()})

    assert set(got) == set(want)
    for key in want:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-13, err_msg=key)


@pytest.mark.parametrize("form", LOOP_FORMS)
@pytest.mark.parametrize("case", GRID, ids=str)
def test_float64_matches_torch_to_1e10(torch, case, form, rng):
    T, I, H = 7, 5, 6
    torch.manual_seed(0)
    ref, ours = twins(torch, case, I, H, "float64", form)
    assert_matches_torch(torch, ref, ours, *make_problem(case, rng, T, I, H))


@pytest.mark.parametrize("form", LOOP_FORMS)
@pytest.mark.parametrize("case", [GRID[2], GRID[8]], ids=str)
def test_float32_matches_torch(torch, case, form, rng):
    T, I, H = 9, 4, 8
    torch.manual_seed(1)
    ref, ours = twins(torch, case, I, H, "float32", form)
    x, state, dy, dh, dc = (None if a is None else
                            (tuple(s.astype(np.float32) for s in a) if isinstance(a, tuple)
                             else a.astype(np.float32))
                            for a in make_problem(case, rng, T, I, H))
    want = torch_run(torch, ref, x, state, dy, dh, dc)
    y, (h_n, c_n) = ours.forward(x, state)
    dx, _ = ours.backward(dy, (dh, dc))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in ours.grads.values())
    np.testing.assert_allclose(y, want["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, want["dx"], rtol=1e-4, atol=1e-5)
    for name, g in ours.grads.items():
        np.testing.assert_allclose(g, want[f"grad:{name}"], rtol=1e-4, atol=1e-5, err_msg=name)


def test_state_dict_round_trip_with_torch(torch):
    """Our parameters load into torch unchanged and give torch's outputs."""
    ours = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=5)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    y, _ = ours.forward(x, train=False)
    np.testing.assert_allclose(y, ref(torch.tensor(x))[0].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_linear_matches_torch(torch, rng):
    ref = torch.nn.Linear(5, 3, dtype=torch.float64)
    ours = Linear(5, 3, dtype="float64")
    ours.load_params({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((4, 2, 5))
    dy = rng.standard_normal((4, 2, 3))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    gx, gw, gb = torch.autograd.grad((yt * torch.tensor(dy)).sum(), [xt, ref.weight, ref.bias])
    np.testing.assert_allclose(ours.forward(x), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grads["weight"], gw.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grads["bias"], gb.numpy(), rtol=1e-12)


def test_losses_match_torch(torch, rng):
    pred, target = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    pt = torch.tensor(pred, requires_grad=True)
    want = torch.nn.functional.mse_loss(pt, torch.tensor(target))
    mse = MSELoss()
    np.testing.assert_allclose(float(mse.forward(pred, target)), want.item(), rtol=1e-12)
    np.testing.assert_allclose(mse.backward(), torch.autograd.grad(want, pt)[0].numpy(), rtol=1e-12)

    logits = rng.standard_normal((3, 5, 7)) * 4
    labels = rng.integers(0, 7, size=(3, 5))
    lt = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(lt.reshape(-1, 7), torch.tensor(labels).reshape(-1))
    ce = CrossEntropyLoss()
    np.testing.assert_allclose(float(ce.forward(logits, labels)), want.item(), rtol=1e-12)
    np.testing.assert_allclose(ce.backward(), torch.autograd.grad(want, lt)[0].numpy(),
                               rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("kind", ["sgd", "sgd_momentum", "adam"])
def test_optimizers_match_torch(torch, kind, rng):
    """Five steps on the same gradients give torch.optim's parameters."""
    layer = Linear(4, 3, dtype="float64", seed=0)
    ref = [torch.tensor(v, requires_grad=True) for v in layer.state_dict().values()]
    names = list(layer.params)
    if kind == "adam":
        ours, theirs = Adam([layer], lr=0.01), torch.optim.Adam(ref, lr=0.01)
    else:
        mom = 0.9 if kind == "sgd_momentum" else 0.0
        ours, theirs = SGD([layer], lr=0.1, momentum=mom), torch.optim.SGD(ref, lr=0.1, momentum=mom)
    for _ in range(5):
        for name, t in zip(names, ref):
            g = rng.standard_normal(t.shape)
            layer.grads[name][...] = g
            t.grad = torch.tensor(g)
        ours.step()
        theirs.step()
    for name, t in zip(names, ref):
        np.testing.assert_allclose(layer.params[name], t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_clip_grad_norm_matches_torch(torch, rng):
    layers = [Linear(4, 3, dtype="float64"), Linear(3, 2, dtype="float64")]
    tensors = []
    for layer in layers:
        for g in layer.grads.values():
            g[...] = rng.standard_normal(g.shape) * 3
            t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
            t.grad = torch.tensor(g)
            tensors.append(t)
    want = torch.nn.utils.clip_grad_norm_(tensors, max_norm=1.5)
    norm = clip_grad_norm(layers, max_norm=1.5)
    np.testing.assert_allclose(float(norm), want.item(), rtol=1e-12)
    got = [g for layer in layers for g in layer.grads.values()]
    for g, t in zip(got, tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5)   # torch adds 1e-6 to the norm
