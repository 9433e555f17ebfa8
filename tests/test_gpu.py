"""CuPy against NumPy: the fused kernels, the cuBLAS GEMMs, and the whole model.

Marked ``gpu``: run with ``pytest -m gpu`` on a machine with CuPy and a CUDA device;
elsewhere every test here skips with the reason.
"""

import importlib.util

import numpy as np
import pytest

from backends import Backend
from cases import OPTIMIZER_KINDS, optimizer_steps
from lstm_xp import LSTM, Adam, Linear, MSELoss, clip_grad_norm

pytestmark = pytest.mark.gpu

GENERIC = Backend("generic-numpy", np)
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B,H", [(1, 1), (3, 7), (64, 256), (5, 1000)])
def test_fused_cell_matches_generic(gpu, dtype, B, H, rng):
    gates = (rng.standard_normal((B, 4 * H)) * 6).astype(dtype)
    c_prev = rng.standard_normal((B, H)).astype(dtype)
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc = rng.standard_normal((B, H)).astype(dtype)
    out = {}
    for name, backend in (("cpu", GENERIC), ("gpu", gpu)):
        g, cp_, dh_, dc_ = (backend.asarray(a, copy=True) for a in (gates, c_prev, dh, dc))
        c, h = backend.zeros((B, H), g.dtype), backend.zeros((B, H), g.dtype)
        backend.lstm_cell_forward(g, cp_, c, h)
        acts = backend.to_numpy(g).copy()
        alpha, f = backend.zeros((1, B, H), g.dtype), backend.zeros((1, B, H), g.dtype)
        backend.lstm_backward_factors(g[None], cp_[None], c[None], alpha, f)
        factors = backend.to_numpy(g).copy()
        backend.lstm_cell_backward_step(g, alpha[0], f[0], dh_, dc_)
        out[name] = [acts, factors] + [backend.to_numpy(a) for a in (c, h, alpha, f, g, dc_)]
    labels = ("acts", "factors", "c", "h", "alpha", "f", "da", "dc_prev")
    for label, want, got in zip(labels, out["cpu"], out["gpu"]):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, err_msg=label, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_primitives_match_generic(gpu, dtype, rng):
    a = rng.standard_normal((6, 9)).astype(dtype)
    w = rng.standard_normal((4, 9)).astype(dtype)
    base = rng.standard_normal((6, 4)).astype(dtype)
    for name in ("matmul_into", "matmul_acc"):
        want = base.copy()
        getattr(GENERIC, name)(a, w.T, out=want)
        got = gpu.asarray(base, copy=True)
        getattr(gpu, name)(gpu.asarray(a), gpu.asarray(w).T, out=got)
        np.testing.assert_allclose(gpu.to_numpy(got), want, **TOL[dtype])
        # and the transposed-left form used for weight gradients
        want = np.zeros((9, 4), dtype)
        GENERIC.matmul_into(a.T, base, out=want)
        got = gpu.zeros((9, 4), gpu.dtype(dtype))
        gpu.matmul_into(gpu.asarray(a).T, gpu.asarray(base), out=got)
        np.testing.assert_allclose(gpu.to_numpy(got), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True),
                                dict(num_layers=3, batch_first=True)], ids=str)
def test_lstm_on_gpu_matches_cpu(gpu, dtype, kw, rng):
    cpu_lstm = LSTM(5, 16, dtype=dtype, seed=4, **kw)
    gpu_lstm = LSTM(5, 16, dtype=dtype, seed=4, device="gpu", **kw)
    D = 2 if kw.get("bidirectional") else 1
    LD = kw.get("num_layers", 1) * D
    x = rng.standard_normal((3, 11, 5) if kw.get("batch_first") else (11, 3, 5)).astype(dtype)
    h0 = (rng.standard_normal((LD, 3, 16)) * 0.5).astype(dtype)
    y, (h_n, c_n) = cpu_lstm.forward(x, (h0, h0))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, (dh0, dc0) = cpu_lstm.backward(dy, (h_n, c_n))

    gy, (gh, gc) = gpu_lstm.forward(x, (h0, h0))                  # NumPy in, device out
    assert gpu.owns(gy) and gpu.owns(gh)
    gdx, (gdh0, gdc0) = gpu_lstm.backward(gpu.asarray(dy), (gh, gc))
    for label, want, got in (("y", y, gy), ("h_n", h_n, gh), ("c_n", c_n, gc), ("dx", dx, gdx),
                             ("dh0", dh0, gdh0), ("dc0", dc0, gdc0)):
        np.testing.assert_allclose(gpu.to_numpy(got), want, err_msg=label, **TOL[dtype])
    for name in cpu_lstm.grads:
        np.testing.assert_allclose(gpu.to_numpy(gpu_lstm.grads[name]), cpu_lstm.grads[name],
                                   err_msg=name, **TOL[dtype])


def test_move_between_devices_keeps_parameters(gpu):
    lstm = LSTM(3, 4, num_layers=2, seed=0)
    before = lstm.state_dict()
    lstm.to("gpu")
    assert lstm.device == "gpu" and all(gpu.owns(p) for p in lstm.params.values())
    lstm.to("cpu")
    for name, value in lstm.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_training_step_on_gpu_matches_cpu(gpu, rng):
    x = rng.standard_normal((8, 4, 3))
    target = rng.standard_normal((8, 4, 1))
    params = []
    for device in ("cpu", "gpu"):
        lstm = LSTM(3, 8, dtype="float64", seed=1, device=device)
        head = Linear(8, 1, dtype="float64", seed=2, device=device)
        opt = Adam([lstm, head], lr=0.01)
        for _ in range(3):
            opt.zero_grad()
            y, _ = lstm.forward(x)
            loss = MSELoss()
            loss.forward(head.forward(y), target)
            lstm.backward(head.backward(loss.backward()))
            clip_grad_norm([lstm, head], 1.0)
            opt.step()
        params.append({**lstm.state_dict(), **head.state_dict()})
    for name in params[0]:
        np.testing.assert_allclose(params[1][name], params[0][name], rtol=1e-11, atol=1e-12)


def test_unbatched_lengths_and_fortran_ordered_gradients_on_gpu(gpu, rng):
    import cupy
    cpu_lstm = LSTM(3, 6, num_layers=2, bidirectional=True, dtype="float64", seed=9)
    gpu_lstm = LSTM(3, 6, num_layers=2, bidirectional=True, dtype="float64", seed=9, device="gpu")
    # unbatched input
    x = rng.standard_normal((7, 3))
    np.testing.assert_allclose(gpu.to_numpy(gpu_lstm.forward(x)[0]), cpu_lstm.forward(x)[0],
                               **TOL["float64"])
    # padded batch, and state gradients handed over in Fortran order
    x = rng.standard_normal((7, 4, 3))
    lengths = np.array([7, 2, 5, 1])
    dh = rng.standard_normal((4, 4, 6))
    y, _ = cpu_lstm.forward(x, lengths=lengths)
    dx, (dh0, _) = cpu_lstm.backward(np.ones_like(y), (dh, None))
    gy, _ = gpu_lstm.forward(x, lengths=cupy.asarray(lengths))
    gdx, (gdh0, _) = gpu_lstm.backward(cupy.ones_like(gy), (cupy.asfortranarray(cupy.asarray(dh)), None))
    for want, got in ((y, gy), (dx, gdx), (dh0, gdh0)):
        np.testing.assert_allclose(gpu.to_numpy(got), want, **TOL["float64"])
    for name in cpu_lstm.grads:
        np.testing.assert_allclose(gpu.to_numpy(gpu_lstm.grads[name]), cpu_lstm.grads[name],
                                   err_msg=name, **TOL["float64"])


@pytest.mark.parametrize("task, extra", [
    ("seed", dict(epochs=2, hidden_size=16)),
    ("seed", dict(epochs=2, hidden_size=16, tf32=True)),
    ("chars", dict(epochs=2, hidden_size=16, seq_len=16, batches_per_epoch=5, max_chars=20_000)),
    ("chars", dict(epochs=1, hidden_size=16, bptt=16, batch_size=8, max_chars=20_000)),
])
def test_training_job_end_to_end_on_gpu(gpu, tmp_path, task, extra):
    """train -> checkpoint -> load_run -> predict/sample, all on the GPU."""
    from lstm_xp.job.train import TrainConfig, load_run, train
    result = train(TrainConfig(task=task, device="gpu", **extra), tmp_path / "run",
                   progress=False, echo=lambda *_: None)
    assert result.metrics["device"] == "gpu" and "gpu" in result.metrics["versions"]
    assert gpu.allow_tf32 is extra.get("tf32", False)
    gpu.allow_tf32 = False
    _, loaded_task, model = load_run(tmp_path / "run")
    assert model.backend.name == "gpu"
    if task == "chars":
        text = loaded_task.sample(model, "def ", 20, 0.8, np.random.default_rng(0))
        assert text.startswith("def ") and len(text) == 24
    else:
        test = loaded_task.split["test"]
        np.testing.assert_array_equal(loaded_task.predict(model, test.inputs),
                                      result.task.predict(result.model, test.inputs))


@pytest.mark.parametrize("steps_per_block", [1, 4])
def test_backward_in_blocks_of_steps_on_gpu(gpu, monkeypatch, steps_per_block, rng):
    """The factor kernel over several blocks (T = 6: blocks of 1, or of 4 and a partial 2),
    two layers, both directions, padded steps."""
    B, H = 3, 6
    row_bytes = B * 4 * H * 8                                   # one step's float64 gates
    monkeypatch.setattr(gpu, "backward_block_bytes", steps_per_block * row_bytes)
    assert gpu.backward_block_steps(6, B, H, 8) == steps_per_block
    cpu_lstm = LSTM(3, H, num_layers=2, bidirectional=True, dtype="float64", seed=5)
    gpu_lstm = LSTM(3, H, num_layers=2, bidirectional=True, dtype="float64", seed=5,
                    device="gpu")
    x = rng.standard_normal((6, B, 3))
    lengths = np.array([6, 1, 4])
    y, _ = cpu_lstm.forward(x, lengths=lengths)
    dx, (dh0, dc0) = cpu_lstm.backward(np.sin(y))
    gy, _ = gpu_lstm.forward(x, lengths=lengths)
    gdx, (gdh0, gdc0) = gpu_lstm.backward(gpu.asarray(np.sin(y)))
    for want, got in ((y, gy), (dx, gdx), (dh0, gdh0), (dc0, gdc0)):
        np.testing.assert_allclose(gpu.to_numpy(got), want, **TOL["float64"])
    for name in cpu_lstm.grads:
        np.testing.assert_allclose(gpu.to_numpy(gpu_lstm.grads[name]), cpu_lstm.grads[name],
                                   err_msg=name, **TOL["float64"])


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [dict(proj_size=3, num_layers=2, bidirectional=True),
                                dict(bias=False)], ids=str)
def test_lstm_options_on_gpu_match_cpu(gpu, kw, rng):
    cpu_lstm = LSTM(3, 5, dtype="float64", seed=4, **kw)
    gpu_lstm = LSTM(3, 5, dtype="float64", seed=4, device="gpu", **kw)
    x = rng.standard_normal((6, 2, 3))
    y, _ = cpu_lstm.forward(x)
    dx, _ = cpu_lstm.backward(np.cos(y))
    gy, _ = gpu_lstm.forward(x)
    gdx, _ = gpu_lstm.backward(gpu.asarray(np.cos(y)))
    np.testing.assert_allclose(gpu.to_numpy(gy), y, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gpu.to_numpy(gdx), dx, rtol=1e-11, atol=1e-12)
    for name in cpu_lstm.grads:
        np.testing.assert_allclose(gpu.to_numpy(gpu_lstm.grads[name]), cpu_lstm.grads[name],
                                   rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.gpu
def test_dropout_masks_and_embedding_on_gpu(gpu, rng):
    import cupy
    from lstm_xp import Embedding, manual_seed
    manual_seed(3)
    mask = gpu.dropout_mask((400, 50), 0.3, cupy.float32)
    assert mask.dtype == cupy.float32 and isinstance(mask, cupy.ndarray)
    values = set(np.unique(gpu.to_numpy(mask)).tolist())
    assert values == {0.0, np.float32(1 / 0.7)}
    assert abs(float(gpu.to_numpy((mask == 0).mean())) - 0.3) < 0.01
    cpu_emb = Embedding(7, 3, dtype="float64", seed=0)
    gpu_emb = Embedding(7, 3, dtype="float64", seed=0, device="gpu")
    ids = rng.integers(0, 7, size=(5, 4))
    dy = rng.standard_normal((5, 4, 3))
    cpu_emb.forward(ids)
    cpu_emb.backward(dy)
    gpu_emb.forward(ids)
    gpu_emb.backward(gpu.asarray(dy))
    np.testing.assert_allclose(gpu.to_numpy(gpu_emb.grads["weight"]), cpu_emb.grads["weight"],
                               rtol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [dict(peephole=True, layer_norm=True),
                                dict(layer_norm=True, zoneout=(0.2, 0.4)),
                                dict(zoneout=0.3, recurrent_dropout=0.3, weight_drop=0.3)],
                         ids=str)
def test_cell_variants_on_gpu_match_cpu(gpu, kw, rng, monkeypatch):
    """The variants' generic xp code on CuPy, with the masks drawn as on the CPU (the host
    generator, Backend.dropout_mask), so that both sides see the same ones."""
    monkeypatch.setattr(gpu, "dropout_mask", lambda *a: Backend.dropout_mask(gpu, *a))
    from lstm_xp import manual_seed
    results = []
    for device in ("cpu", "gpu"):
        lstm = LSTM(3, 8, num_layers=2, bidirectional=True, dtype="float64", seed=1,
                    device=device, **kw)
        backend = lstm.backend
        manual_seed(6)
        x = rng.standard_normal((6, 4, 3)) if device == "cpu" else results[0][0]
        y, (h_n, c_n) = lstm.forward(backend.asarray(x), lengths=[6, 3, 5, 1])
        dy = np.cos(np.arange(6 * 4 * 16)).reshape(6, 4, 16)
        dx, _ = lstm.backward(backend.asarray(dy))
        results.append([x] + [backend.to_numpy(a) for a in (y, h_n, c_n, dx)]
                       + [backend.to_numpy(lstm.grads[k]) for k in sorted(lstm.grads)])
    for want, got in zip(*results):
        np.testing.assert_allclose(got, want, **TOL["float64"])


@pytest.mark.gpu
@pytest.mark.parametrize("kind", OPTIMIZER_KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_optimizer_steps_match_generic(gpu, kind, dtype, rng):
    p0 = rng.standard_normal(1000).astype(dtype)
    grads = [rng.standard_normal(1000).astype(dtype) for _ in range(3)]
    want, got = (optimizer_steps(b, kind, p0, grads) for b in (GENERIC, gpu))
    # the same operations in the same order: equal to a few ulps (a GPU may fuse a
    # multiply-add where NumPy rounds twice)
    tol = dict(rtol=5e-7, atol=0) if dtype == "float32" else dict(rtol=1e-15, atol=0)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, **tol)


@pytest.mark.parametrize("layout", ["strided", "negative", "transposed"])
def test_strided_device_arrays_on_gpu_match_contiguous(gpu, layout, rng):
    """dy and x on the device as views with any strides: the same results as contiguous
    copies (the CUDA cell reads dy by rows, so the layer copies rows that are not runs)."""
    x = rng.standard_normal((5, 3, 3))
    dy = rng.standard_normal((5, 3, 8))
    flip = (slice(None, None, -1), slice(None), slice(None, None, -1))
    views = {"strided": lambda a: gpu.asarray(np.repeat(a, 2, axis=-1))[..., ::2],
             "negative": lambda a: gpu.asarray(np.ascontiguousarray(a[flip]))[flip],
             "transposed": lambda a: gpu.asarray(np.ascontiguousarray(a.T)).T}
    results = []
    for make in (gpu.asarray, views[layout]):
        lstm = LSTM(3, 4, bidirectional=True, dtype="float64", seed=2, device="gpu")
        y, _ = lstm.forward(make(x))
        dx, (dh0, _) = lstm.backward(make(dy))
        results.append([gpu.to_numpy(a) for a in (y, dx, dh0, lstm.grads["weight_hh_l0"])])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, want)


def _tf32_bound(a, b):
    """Per entry of a @ b: the error bound when a and b are rounded to TF32 (each entry off
    by at most 2**-10 of itself) and the products summed in float32 (K * 2**-24 of the
    absolute sum), times 1.01."""
    absolute = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    return 1.01 * absolute * (2 * 2.0 ** -10 + 2.0 ** -20 + a.shape[1] * 2.0 ** -24)


def test_tf32_switch_rounds_float32_gemms_and_only_those(gpu, rng):
    """allow_tf32 (off by default) lets cuBLAS's sgemm and CuPy's float32 matmul round their
    inputs to TF32: their results stay inside the 10-bit-mantissa bound; float64 GEMMs keep
    their bits; switching off restores full float32. A GPU may still pick a full-FP32 kernel
    for a small GEMM, so that TF32 did act is asserted on the emulated device only."""
    a = rng.standard_normal((64, 256)).astype("float32")
    b = rng.standard_normal((256, 32)).astype("float32")
    exact = a.astype(np.float64) @ b.astype(np.float64)
    a64, b64 = gpu.asarray(a.astype(np.float64)), gpu.asarray(b.astype(np.float64))

    def products():
        into = gpu.zeros((64, 32), gpu.dtype("float32"))
        gpu.matmul_into(gpu.asarray(a), gpu.asarray(b), out=into)
        double = gpu.zeros((64, 32), gpu.dtype("float64"))
        gpu.matmul_into(a64, b64, out=double)
        return (gpu.to_numpy(into), gpu.to_numpy(gpu.xp.matmul(gpu.asarray(a), gpu.asarray(b))),
                gpu.to_numpy(double))

    assert gpu.allow_tf32 is False
    into_off, matmul_off, double_off = products()
    try:
        gpu.allow_tf32 = True
        assert gpu.allow_tf32 is True
        into_on, matmul_on, double_on = products()
    finally:
        gpu.allow_tf32 = False
    assert gpu.allow_tf32 is False
    bound = _tf32_bound(a, b)
    for got in (into_on, matmul_on):
        assert np.all(np.abs(got - exact) <= bound)
    np.testing.assert_array_equal(double_on, double_off)
    full = 1.01 * (np.abs(a).astype(np.float64) @ np.abs(b)) * 256 * 2.0 ** -24
    for got in (into_off, matmul_off, *products()[:2]):         # off again: full float32
        assert np.all(np.abs(got - exact) <= full)
    if importlib.util.find_spec("cupy._emulator") is not None:        # the emulated device
        for got in (into_on, matmul_on):
            assert np.max(np.abs(got - exact) / bound) > 0.01 > np.max(
                np.abs(into_off - exact) / bound)


def test_lstm_with_tf32_stays_within_a_10_bit_mantissa(gpu, rng):
    """A training step's outputs and gradients with TF32 on, against float64 on the CPU:
    relative errors of order 2**-10 (1e-3) after 8 steps, where full float32 gives 1e-6."""
    T, B, I, H = 8, 4, 16, 32
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, H))
    ref = LSTM(I, H, dtype="float64", seed=5)
    y, _ = ref.forward(x)
    ref.backward(dy)
    lstm = LSTM(I, H, dtype="float32", seed=5, device="gpu")
    try:
        gpu.allow_tf32 = True
        gy, _ = lstm.forward(x.astype("float32"))
        lstm.backward(gpu.asarray(dy.astype("float32")))
    finally:
        gpu.allow_tf32 = False
    scale = lambda a: np.max(np.abs(a))     # noqa: E731
    assert np.max(np.abs(gpu.to_numpy(gy) - y)) <= 1e-2 * scale(y)
    for name, want in ref.grads.items():
        got = gpu.to_numpy(lstm.grads[name])
        assert np.max(np.abs(got - want)) <= 1e-2 * scale(want), name


def test_tf32_is_a_gpu_mode():
    from backends import get_backend
    cpu = get_backend("cpu")
    assert cpu.allow_tf32 is False
    cpu.allow_tf32 = False
    with pytest.raises(ValueError, match="allow_tf32: TF32 is a cuBLAS math mode of the gpu"):
        cpu.allow_tf32 = True
    with pytest.raises(TypeError, match="allow_tf32 must be True or False, got 1"):
        cpu.allow_tf32 = 1


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam", "adamw"])
def test_fused_optimizer_steps_take_strided_arrays(gpu, kind, rng):
    """The fused kernels index linearly, so a strided parameter (the per-array path of tied
    weights may hand one over) goes to the generic step; entries outside the view stay."""
    whole = rng.standard_normal((6, 8))
    g, m, v = (rng.standard_normal((6, 4)) for _ in range(3))
    v = np.abs(v)
    results = []
    for backend in (GENERIC, gpu):
        base = backend.asarray(whole, copy=True)
        p = base[:, ::2]
        args = [backend.asarray(a, copy=True) for a in (g, m, v)]
        if kind == "sgd":
            backend.sgd_update(p, args[0], None, 0.1, 0.0, 0.01, False)
        elif kind == "momentum":
            backend.sgd_update(p, args[0], args[1], 0.1, 0.9, 0.01, True)
        else:
            backend.adam_update(p, *args, 3, 0.01, 0.9, 0.999, 1e-8, 0.01, kind == "adamw")
        results.append([backend.to_numpy(a) for a in (base, *args)])
    for want, got in zip(*results):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(results[1][0][:, 1::2], whole[:, 1::2])


class _Comm:
    """An MPI communicator's face, as rank ``rank`` of 2 sees it, whose peer's answers to
    allreduce(MIN) are ``peer``'s; it logs every collective."""

    def __init__(self, rank, peer):
        self.rank, self.peer, self.calls = rank, list(peer), []

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return 2

    def allreduce(self, value, op):
        self.calls.append(("allreduce", value))
        return min(value, self.peer.pop(0))

    def bcast(self, value, root):
        self.calls.append(("bcast", value))
        return value if value is not None else b"uid"


class _MPI:
    MIN = "MIN"


@pytest.mark.parametrize("peer, starts, agreed", [
    ([1, 1], True, True),          # both ready, both started: NCCL
    ([0], False, False),           # the peer has no NCCL: nobody starts it
    ([1, 0], True, False),         # the peer's start failed: this rank drops its own
])
def test_nccl_is_used_only_where_every_rank_agrees(gpu, monkeypatch, peer, starts, agreed):
    import sys
    import types
    started = []

    class Communicator:
        def __init__(self, size, uid, rank):
            started.append((size, uid, rank))
            self.destroyed = False

        def destroy(self):
            self.destroyed = True

    fake = types.SimpleNamespace(get_unique_id=lambda: b"uid", NcclCommunicator=Communicator)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", fake)
    monkeypatch.setattr(sys.modules["cupy.cuda"], "nccl", fake, raising=False)
    monkeypatch.setattr(gpu, "_nccl", {}, raising=False)
    comm = _Comm(1, peer)
    got = gpu._nccl_for(comm, _MPI)
    assert (got is not None) is agreed
    assert bool(started) is starts
    assert comm.calls[0] == ("allreduce", 1)             # agreement before NCCL's setup
    if starts and not agreed:
        assert comm.calls[-1] == ("allreduce", 1)        # and after it
    assert gpu._nccl_for(comm, _MPI) is got               # cached: no second round


def test_time_loops_take_the_lean_path_and_match_the_generic_loops(gpu, monkeypatch, rng):
    """The backend's own loops (addresses worked out once, cuBLAS called directly) run for
    every layout lstm_xp hands them: both directions, two layers, padded or not; and agree
    with Backend's generic loops (per-step views, cupy.cublas.gemm) on the same device."""
    from backends import Backend
    x = rng.standard_normal((7, 3, 4)).astype("float32")
    cases = [(None, rng.standard_normal((7, 3, 10)).astype("float32")),
             (np.array([7, 4, 1]), rng.standard_normal((7, 3, 10)).astype("float32"))]

    def run():
        lstm = LSTM(4, 5, num_layers=2, bidirectional=True, device="gpu", seed=3)
        out = []
        for lengths, dy in cases:
            y, (h_n, c_n) = lstm.forward(x, lengths=lengths)
            dx, (dh0, dc0) = lstm.backward(gpu.asarray(dy))
            out += [y, h_n, c_n, dx, dh0, dc0, *(lstm.grads[k] for k in sorted(lstm.grads))]
            lstm.zero_grad()
        return [gpu.to_numpy(a) for a in out]

    with monkeypatch.context() as m:           # the generic loops must not run at all
        for name in ("lstm_forward_steps", "lstm_backward_steps"):
            m.setattr(Backend, name, lambda *a, **k: pytest.fail("a generic loop ran"))
        lean = run()
    with monkeypatch.context() as m:
        for name in ("lstm_forward_steps", "lstm_backward_steps"):
            m.setattr(type(gpu), name, getattr(Backend, name))
        generic = run()
    for got, want in zip(lean, generic):
        np.testing.assert_allclose(got, want, **TOL["float32"])


def test_time_loops_fall_back_for_other_layouts(gpu, rng):
    """A weight without a unit stride cannot be one cuBLAS operand: Backend's loop runs it."""
    T, B, H = 5, 2, 3
    gates = (rng.standard_normal((T, B, 4 * H)) * 2).astype("float32")
    w_wide = rng.standard_normal((4 * H, 2 * H)).astype("float32")
    h0 = rng.standard_normal((B, H)).astype("float32")
    results = []
    for backend in (GENERIC, gpu):
        g = backend.asarray(gates, copy=True)
        h, c = backend.zeros((T + 1, B, H), g.dtype), backend.zeros((T + 1, B, H), g.dtype)
        h[0, ...] = backend.asarray(h0)
        w_t = backend.asarray(w_wide)[:, ::2].T          # (H, 4H), strides (8, 24): no unit
        backend.lstm_forward_steps(g, h, c, w_t, None, False)
        results.append([backend.to_numpy(a) for a in (g, h, c)])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, **TOL["float32"])


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_an_eval_forward_stores_no_activations(gpu, padded, rng):
    """keep_activations=False (what an eval forward asks): the same state, and the gates
    left holding the pre-activations (one store of 4H per row fewer each step)."""
    T, B, H = 4, 3, 5
    gates = (rng.standard_normal((T, B, 4 * H)) * 2).astype("float32")
    w_t = rng.standard_normal((H, 4 * H)).astype("float32")
    hold = gpu.asarray(rng.random((T, B, 1)) < 0.4) if padded else None
    runs = []
    for keep in (True, False):
        g = gpu.asarray(gates, copy=True)
        h, c = gpu.zeros((T + 1, B, H), g.dtype), gpu.zeros((T + 1, B, H), g.dtype)
        gpu.lstm_forward_steps(g, h, c, gpu.asarray(w_t), hold, False, keep_activations=keep)
        runs.append([gpu.to_numpy(a) for a in (g, h, c)])
    (g_keep, h_keep, c_keep), (g_eval, h_eval, c_eval) = runs
    np.testing.assert_array_equal(h_eval, h_keep)
    np.testing.assert_array_equal(c_eval, c_keep)
    assert np.all((g_keep >= -1) & (g_keep <= 1))          # activations: sigmoid, tanh
    assert np.abs(g_eval).max() > 1                         # pre-activations: not squashed
    lstm = LSTM(4, 5, device="gpu", seed=2)
    x = rng.standard_normal((6, 2, 4)).astype("float32")
    np.testing.assert_array_equal(gpu.to_numpy(lstm.forward(x, train=False)[0]),
                                  gpu.to_numpy(lstm.forward(x)[0]))


def test_lean_loops_take_either_weight_layout(gpu, rng):
    """The per-step GEMM with W_hh^T as a transposed view (cuBLAS op T) or as the contiguous
    copy transposed_operand makes (op N): the same recurrence."""
    T, B, H = 5, 3, 4
    gates = rng.standard_normal((T, B, 4 * H)).astype("float32")
    w = gpu.asarray(rng.standard_normal((4 * H, H)).astype("float32"))
    assert gpu.transposed_operand(w).flags.c_contiguous
    runs = []
    for w_t in (w.T, gpu.transposed_operand(w)):
        g = gpu.asarray(gates, copy=True)
        h, c = gpu.zeros((T + 1, B, H), g.dtype), gpu.zeros((T + 1, B, H), g.dtype)
        h[0, ...] = 0.5
        gpu.lstm_forward_steps(g, h, c, w_t, None, True)
        runs.append([gpu.to_numpy(a) for a in (g, h, c)])
    for got, want in zip(*runs):
        np.testing.assert_allclose(got, want, **TOL["float32"])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_on_gpu_matches_cpu(gpu, nonlinearity, rng):
    from lstm_xp import RNN
    kw = dict(num_layers=2, bidirectional=True, nonlinearity=nonlinearity, dtype="float64",
              seed=3)
    cpu, dev = RNN(3, 4, **kw), RNN(3, 4, device="gpu", **kw)
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    y, h_n = cpu.forward(x)
    dx, dh0 = cpu.backward(dy)
    gy, gh = dev.forward(x)
    gdx, gdh0 = dev.backward(gpu.asarray(dy))
    for want, got in ((y, gy), (h_n, gh), (dx, gdx), (dh0, gdh0)):
        np.testing.assert_allclose(gpu.to_numpy(got), want, **TOL["float64"])
    for name in cpu.grads:
        np.testing.assert_allclose(gpu.to_numpy(dev.grads[name]), cpu.grads[name],
                                   err_msg=name, **TOL["float64"])


def test_trace_on_gpu_matches_cpu(gpu, rng):
    """inspect.trace records dL/dh_t, dL/dc_t through the GPU's loops as on the CPU."""
    from lstm_xp.inspect import trace
    kw = dict(num_layers=2, bidirectional=True, dtype="float64", seed=4)
    x, dy = rng.standard_normal((6, 3, 4)), rng.standard_normal((6, 3, 10))
    lengths = [6, 2, 4]
    dy[np.arange(6)[:, None] >= np.asarray(lengths)[None, :]] = 0.0
    want = trace(LSTM(4, 5, **kw), x, lengths=lengths, dy=dy)
    got = trace(LSTM(4, 5, device="gpu", **kw), x, lengths=lengths, dy=gpu.asarray(dy))
    for name in ("gates", "c", "h", "dh", "dc"):
        for k in range(2):
            for d in range(2):
                np.testing.assert_allclose(getattr(got, name)[k][d], getattr(want, name)[k][d],
                                           err_msg=f"{name}[{k}][{d}]", **TOL["float64"])


def test_inspect_a_gpu_run(gpu, tmp_path):
    """lstm-xp inspect on a run trained on the GPU: the traces run on the device."""
    import json
    from lstm_xp.job.inspect_run import inspect_run
    from lstm_xp.job.train import TrainConfig, train
    train(TrainConfig(task="adding", device="gpu", seq_len=12, epochs=1, batches_per_epoch=3,
                      hidden_size=6), tmp_path / "run", progress=False, echo=lambda *_: None)
    result = inspect_run(tmp_path / "run", sequences=10, echo=lambda *_: None)
    assert len(result["gradient_norm_by_lag"]["c"]) == 12
    saved = json.loads((tmp_path / "run" / "inspect" / "inspect.json").read_text())
    assert saved["gradient_norm_by_lag"] == result["gradient_norm_by_lag"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_quantile_head_and_pinball_loss_on_gpu_match_cpu(gpu, dtype, rng):
    from lstm_xp import MonotoneQuantiles, PinballLoss
    z = rng.standard_normal((6, 3, 5)).astype(dtype)
    y = rng.standard_normal((6, 3)).astype(dtype)
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    got = []
    for device in ("cpu", "gpu"):
        layer, loss = MonotoneQuantiles(device=device), PinballLoss(levels)
        backend = layer.backend
        q = layer.forward(backend.asarray(z, dtype))
        value = loss.forward(q, backend.asarray(y, dtype))
        dz = layer.backward(loss.backward())
        assert backend.owns(q) and backend.owns(dz) and q.dtype == z.dtype
        got.append([backend.to_numpy(a) for a in (q, value, dz)])
    for cpu, dev in zip(*got):
        np.testing.assert_allclose(dev, cpu, **TOL[dtype])


def test_forecasting_run_on_gpu_matches_its_own_predictions(gpu, tmp_path):
    """horizon, quantiles and a backtest on the device: the scores it reports are those of
    its predictions."""
    from lstm_xp.job.train import TrainConfig, load_run, train
    result = train(TrainConfig(task="co2", device="gpu", epochs=1, hidden_size=8, horizon=4,
                               quantiles=[0.1, 0.5, 0.9], backtest=5), tmp_path / "run",
                   progress=False, echo=lambda *_: None)
    _, task, model = load_run(tmp_path / "run")
    assert model.backend.name == "gpu"
    test = task.split["test"]
    q = task.predict(model, test.inputs, test.extra)
    assert q.shape == (len(test), 4, 3) and np.all(np.diff(q, axis=-1) > 0)
    assert result.metrics["test_rmse"] == pytest.approx(
        np.sqrt(np.mean((q[..., 1] - test.targets) ** 2)), rel=1e-6)
    assert result.metrics["backtest"]["origins"] == 5
