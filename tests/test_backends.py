"""Backend selection, the fused/in-place hot path against the generic one, and the seam."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import backends
import lstm_xp
from backends import Backend, BackendUnavailableError, get_backend
from backends.numpy_backend import NumpyBackend
from cases import GATE_FORMS, numpy_backend
from lstm_xp import LSTM, Adam, CrossEntropyLoss, Linear, MSELoss, clip_grad_norm

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ selection
def test_cpu_backend_is_numpy_and_shared():
    cpu = get_backend("cpu")
    assert isinstance(cpu, NumpyBackend) and cpu.xp is np
    assert get_backend("CPU") is cpu and get_backend("numpy") is cpu
    assert get_backend(cpu) is cpu


def test_unknown_device_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown device 'tpu'.*'cpu'.*'gpu'"):
        get_backend("tpu")
    with pytest.raises(TypeError, match="device must be a name"):
        get_backend(3)


def _forget_gpu(monkeypatch):
    monkeypatch.delitem(backends._INSTANCES, "gpu", raising=False)


def test_gpu_without_cupy_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)       # makes `import cupy` fail
    _forget_gpu(monkeypatch)
    monkeypatch.chdir(ROOT)                               # from a checkout: the extra
    with pytest.raises(BackendUnavailableError,
                       match=r'needs CuPy.*pip install "\.\[cuda12\]" \(CUDA 12\)'):
        get_backend("gpu")
    monkeypatch.chdir(tmp_path)                           # elsewhere: the installed package
    with pytest.raises(BackendUnavailableError,
                       match=r'needs CuPy.*pip install "lstm-xp\[cuda12\]" \(CUDA 12\)'):
        get_backend("gpu")
    assert isinstance(get_backend("auto"), NumpyBackend)


def test_install_hints_name_extras_that_pyproject_has():
    import re
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    sources = [p.read_text() for folder in ("lstm_xp", "backends")
               for p in (ROOT / folder).rglob("*.py")]
    asked = set(re.findall(r"install_command\(['\"]([\w-]+)['\"]\)", "\n".join(sources)))
    assert asked >= {"cuda12", "cuda13", "onnx", "mpi", "train"}
    assert asked <= set(extras), asked - set(extras)


def test_gpu_without_a_device_says_so(monkeypatch):
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 0)
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    _forget_gpu(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="no CUDA device is visible"):
        get_backend("gpu")

    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient "
                           "for CUDA runtime version")
    runtime.getDeviceCount = no_driver
    with pytest.raises(BackendUnavailableError) as caught:
        get_backend("gpu")
    assert str(caught.value) == ("device 'gpu': no NVIDIA driver is installed here, so there "
                                 "is no usable GPU (CuPy says: cudaErrorInsufficientDriver); "
                                 "use device 'cpu', or run on a machine with an NVIDIA GPU "
                                 "and its driver")

    def broken():
        raise RuntimeError("cudaErrorUnknown")
    runtime.getDeviceCount = broken
    with pytest.raises(BackendUnavailableError, match="CUDA cannot be used here.*cudaErrorUnknown"):
        get_backend("gpu")
    assert isinstance(get_backend("auto"), NumpyBackend)


def test_lstm_on_gpu_name_fails_with_the_backend_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    _forget_gpu(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="CuPy"):
        LSTM(2, 3, device="gpu")


def test_import_and_cpu_use_need_neither_cupy_nor_torch():
    code = (
        "import sys\n"
        "sys.modules['cupy'] = None; sys.modules['torch'] = None\n"
        "import numpy as np, lstm_xp\n"
        "lstm = lstm_xp.LSTM(2, 3)\n"
        "y, _ = lstm.forward(np.ones((4, 1, 2), np.float32))\n"
        "lstm.backward(np.ones_like(y))\n"
        "assert sys.modules['cupy'] is None and sys.modules['torch'] is None\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------- fused / in-place vs generic xp
GENERIC = Backend("generic-numpy", np)
TOL = {"float32": dict(rtol=2e-6, atol=2e-6), "float64": dict(rtol=1e-14, atol=1e-14)}


def cell_inputs(rng, B, H, dtype):
    # pre-activations up to +-30: saturated gates included
    gates = (rng.standard_normal((B, 4 * H)) * 10).clip(-30, 30).astype(dtype)
    c_prev = rng.standard_normal((B, H)).astype(dtype)
    return gates, c_prev


def run_cell(backend, gates, c_prev, dh, dc):
    """Forward one step, then the backward factors (a block of one step) and backward."""
    g, c_prev = gates.copy(), c_prev.copy()
    c, h = np.empty_like(c_prev), np.empty_like(c_prev)
    backend.lstm_cell_forward(g, c_prev, c, h)
    acts = g.copy()
    alpha, f = np.empty_like(c), np.empty_like(c)
    backend.lstm_backward_factors(g[None], c_prev[None], c[None], alpha[None], f[None])
    factors = g.copy()
    dc_io = dc.copy()
    backend.lstm_cell_backward_step(g, alpha, f, dh, dc_io)
    return {"acts": acts, "c": c, "h": h, "factors": factors, "alpha": alpha, "f": f,
            "da": g, "dc_prev": dc_io}


def naive_cell_gradients(acts, c_prev, c, dh, dc):
    """The cell's gradients from the chain rule, written out once more in float64."""
    H = c.shape[-1]
    i, f, g, o = (acts[:, k * H:(k + 1) * H].astype(np.float64) for k in range(4))
    tanh_c = np.tanh(c.astype(np.float64))
    dc_t = dc + dh * o * (1 - tanh_c ** 2)
    da = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f),
                         dc_t * i * (1 - g ** 2), dh * tanh_c * o * (1 - o)], axis=1)
    return da, dc_t * f


@pytest.mark.parametrize("form", GATE_FORMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B,H", [(1, 1), (3, 5), (16, 64)])
def test_numpy_cell_matches_generic(dtype, B, H, form, rng):
    gates, c_prev = cell_inputs(rng, B, H, dtype)
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc = rng.standard_normal((B, H)).astype(dtype)
    want = run_cell(GENERIC, gates, c_prev, dh, dc)
    got = run_cell(numpy_backend(form), gates, c_prev, dh, dc)
    for key in want:
        assert got[key].dtype == np.dtype(dtype), key
        np.testing.assert_allclose(got[key], want[key], err_msg=key, **TOL[dtype])
    # and both are the chain rule of the forward cell
    da, dc_prev = naive_cell_gradients(want["acts"], c_prev, want["c"], dh, dc)
    np.testing.assert_allclose(want["da"], da, **TOL[dtype])
    np.testing.assert_allclose(want["dc_prev"], dc_prev, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_gate_form_follows_the_size_of_the_gates_only(dtype, rng):
    """The backend uses the tanh form below exp_form_min_size gate entries (B*4H) and the
    exp form from there on (bit for bit what each form gives), whatever the values."""
    cpu = NumpyBackend()
    cpu.exp_form_min_size = dict(NumpyBackend.EXP_FORM_MIN_SIZE)
    H = 8
    B_exp = cpu.exp_form_min_size[dtype] // (4 * H)
    for B, form in ((B_exp - 1, "tanh"), (B_exp, "exp")):
        gates, c_prev = cell_inputs(rng, B, H, dtype)
        zeros = np.zeros_like(c_prev)
        got = run_cell(cpu, gates, c_prev, zeros, zeros)
        want = run_cell(numpy_backend(form), gates, c_prev, zeros, zeros)
        other = run_cell(numpy_backend({"tanh": "exp", "exp": "tanh"}[form]), gates, c_prev,
                         zeros, zeros)
        for key in ("acts", "h"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
        assert not np.array_equal(got["acts"], other["acts"])    # the forms differ in bits


def test_the_default_gate_form_is_chosen_per_machine(monkeypatch):
    from backends import numpy_backend as nb
    monkeypatch.setattr(nb, "numpy_dispatches_avx512", lambda: True)
    assert NumpyBackend().exp_form_min_size == {"float32": float("inf"), "float64": float("inf")}
    monkeypatch.setattr(nb, "numpy_dispatches_avx512", lambda: False)
    assert NumpyBackend().exp_form_min_size == {"float32": 4096, "float64": 1024}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_backward_factors_of_a_block_match_generic(dtype, rng):
    """Factors over (S, B, 4H) blocks, as backward computes them, on strided gate views."""
    S, B, H = 5, 3, 4
    acts = rng.uniform(0.01, 0.99, (S, B, 4 * H)).astype(dtype)
    c_prev, c = (rng.standard_normal((S, B, H)).astype(dtype) for _ in range(2))
    out = {}
    for name, backend in (("generic", GENERIC), ("numpy", get_backend("cpu"))):
        g, alpha, f = acts.copy(), np.empty_like(c), np.empty_like(c)
        backend.lstm_backward_factors(g, c_prev, c, alpha, f)
        out[name] = (g, alpha, f)
    for want, got in zip(out["generic"], out["numpy"]):
        np.testing.assert_allclose(got, want, **TOL[dtype])
    np.testing.assert_array_equal(out["numpy"][2], acts[..., H:2 * H])    # f kept as is


@pytest.mark.parametrize("form", GATE_FORMS)
def test_numpy_caches_stay_bounded_over_many_batch_sizes(form, rng):
    """Scratch arrays are cached per shape; a process that sees many shapes keeps a bounded
    number of them, and results do not depend on what the cache held."""
    from backends.numpy_backend import _MAX_CACHED
    backend = numpy_backend(form)
    for B in range(1, 3 * _MAX_CACHED):
        gates, c_prev = cell_inputs(rng, B, 3, "float64")
        got = run_cell(backend, gates, c_prev, np.ones_like(c_prev), np.zeros_like(c_prev))
        if B % 50 == 0:
            want = run_cell(GENERIC, gates, c_prev, np.ones_like(c_prev), np.zeros_like(c_prev))
            for key in want:
                np.testing.assert_allclose(got[key], want[key], err_msg=key, **TOL["float64"])
    assert len(backend._workspaces) <= _MAX_CACHED
    assert len(backend._gate_affine) <= _MAX_CACHED


def test_numpy_cell_backward_refuses_non_contiguous_factors():
    factors = np.zeros((3, 8), np.float32)[:, ::2]
    z = np.zeros((3, 1), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        get_backend("cpu").lstm_cell_backward_step(factors, z, z, z, z.copy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_matmul_primitives_match_generic(dtype, rng):
    a = rng.standard_normal((5, 7)).astype(dtype)
    w = rng.standard_normal((3, 7)).astype(dtype)
    base = rng.standard_normal((5, 3)).astype(dtype)
    for name in ("matmul_into", "matmul_acc"):
        want, got = base.copy(), base.copy()
        getattr(GENERIC, name)(a, w.T, out=want)
        getattr(get_backend("cpu"), name)(a, w.T, out=got)
        np.testing.assert_allclose(got, want, **TOL[dtype])
        assert got.dtype == np.dtype(dtype)
        # an out that is not C-contiguous (a column slice) takes the np.matmul path
        wide = np.zeros((5, 7), dtype)
        wide[:, 2:5] = base
        getattr(get_backend("cpu"), name)(a, w.T, out=wide[:, 2:5])
        np.testing.assert_allclose(wide[:, 2:5], want, **TOL[dtype])
        assert not wide[:, [0, 1, 5, 6]].any()


def test_sigmoid_and_tanh_do_not_overflow(rng):
    """Pre-activations of +-1e4 give exact saturation and no warnings, on every path."""
    for dtype in ("float32", "float64"):
        gates = np.array([[1e4, -1e4, 1e4, -1e4], [-1e4, 1e4, -1e4, 1e4]], dtype=dtype)
        c_prev = np.ones((2, 1), dtype)
        for backend in (GENERIC, numpy_backend("tanh"), numpy_backend("exp")):
            g = gates.copy()
            c, h = np.empty_like(c_prev), np.empty_like(c_prev)
            with np.errstate(all="raise"):
                backend.lstm_cell_forward(g, c_prev, c, h)
            np.testing.assert_array_equal(g, [[1, 0, 1, 0], [0, 1, -1, 1]])
            assert np.all(np.isfinite(c)) and np.all(np.isfinite(h))
    # the exp form's band just short of exp's overflow, where sigma is subnormal: still no
    # overflow, invalid or divide warning, forward or backward (underflow is harmless: the
    # products of such tiny gates with the state may underflow, as in any float code)
    for dtype, a in (("float32", -88.0), ("float64", -709.5)):
        gates = np.array([[a, a, a / 2, a]], dtype=dtype)
        c_prev = np.full((1, 1), 0.3, dtype)
        c, h = np.empty_like(c_prev), np.empty_like(c_prev)
        alpha, f = np.empty_like(c), np.empty_like(c)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            numpy_backend("exp").lstm_cell_forward(gates, c_prev, c, h)
            sigmas = gates[0, [0, 1, 3]].copy()
            numpy_backend("exp").lstm_backward_factors(gates[None], c_prev[None], c[None],
                                                       alpha[None], f[None])
        assert np.all((sigmas > 0) & (sigmas < np.finfo(dtype).tiny))    # subnormal, not 0
        assert np.all(np.isfinite(gates)) and np.isfinite(alpha).all() and np.isfinite(h).all()


# ------------------------------------------------------ the seam, proven on CPU
def lstm_pair(strict, **kw):
    cpu = LSTM(3, 4, dtype="float64", seed=2, **kw)
    other = LSTM(3, 4, dtype="float64", seed=2, device=strict, **kw)
    return cpu, other


@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True),
                                dict(num_layers=2, batch_first=True),
                                dict(num_layers=2, bidirectional=True, proj_size=2),
                                dict(bias=False), dict(num_layers=3, dropout=0.5)], ids=str)
def test_lstm_runs_unchanged_on_a_strict_array_api_device(strict, kw, rng):
    cpu, other = lstm_pair(strict, **kw)
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    x = rng.standard_normal((2, 5, 3) if kw.get("batch_first") else (5, 2, 3))
    h0 = rng.standard_normal((L * D, 2, kw.get("proj_size") or 4))
    c0 = rng.standard_normal((L * D, 2, 4))
    lstm_xp.manual_seed(11)                      # the same dropout masks on both devices
    y, (h_n, c_n) = cpu.forward(x, (h0, c0))
    dy = rng.standard_normal(y.shape)
    dx, (dh0, dc0) = cpu.backward(dy, (h_n, None))

    lstm_xp.manual_seed(11)
    sy, (sh, sc) = other.forward(x, (strict.asarray(h0), c0))   # host and device inputs
    assert other.backend.owns(sy) and other.backend.owns(sh)
    sdx, (sdh0, sdc0) = other.backward(strict.asarray(dy), (sh, None))
    for want, got in ((y, sy), (h_n, sh), (c_n, sc), (dx, sdx), (dh0, sdh0), (dc0, sdc0)):
        np.testing.assert_allclose(strict.to_numpy(got), want, rtol=1e-13, atol=1e-14)
    for name in cpu.grads:
        np.testing.assert_allclose(strict.to_numpy(other.grads[name]), cpu.grads[name],
                                   rtol=1e-13, atol=1e-14)


def test_training_step_runs_unchanged_on_a_strict_device(strict, rng):
    """Linear, both losses, clipping and Adam: a full step on the strict device equals NumPy's."""
    results = []
    x = rng.standard_normal((6, 2, 3))
    target = rng.standard_normal((6, 2, 1))
    labels = rng.integers(0, 4, size=(6, 2))
    for device in ("cpu", strict):
        lstm = LSTM(3, 5, dtype="float64", seed=1, device=device)
        head = Linear(5, 1, dtype="float64", seed=2, device=device)
        cls = Linear(5, 4, dtype="float64", seed=3, device=device)
        opt = Adam([lstm, head, cls], lr=0.01)
        y, _ = lstm.forward(x)
        mse, ce = MSELoss(), CrossEntropyLoss()
        v1 = mse.forward(head.forward(y), target)
        v2 = ce.forward(cls.forward(y), labels)
        dy = head.backward(mse.backward()) + cls.backward(ce.backward())
        lstm.backward(dy)
        norm = clip_grad_norm([lstm, head, cls], max_norm=0.5)
        opt.step()
        to_np = lstm.backend.to_numpy
        results.append([float(v1), float(v2), float(norm)]
                       + [to_np(p) for layer in (lstm, head, cls) for p in layer.params.values()])
    for want, got in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_embedding_dropout_and_adamw_run_unchanged_on_a_strict_device(strict, rng):
    from lstm_xp import AdamW, Dropout, Embedding
    ids = rng.integers(0, 6, size=(4, 3))
    dy = rng.standard_normal((4, 3, 2))
    results = []
    for device in ("cpu", strict):
        emb = Embedding(6, 2, dtype="float64", seed=1, device=device)
        drop = Dropout(0.4, dtype="float64", device=device)
        opt = AdamW([emb], lr=0.1)
        lstm_xp.manual_seed(2)
        drop.forward(emb.forward(ids))
        emb.backward(drop.backward(dy))
        opt.step()
        results.append(emb.backend.to_numpy(emb.params["weight"]))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-13)


# ------------------------------------------------------- the per-step contract
class CountingBackend(NumpyBackend):
    """The NumPy backend's per-step loop (never the compiled one), recording which primitive
    ran, in order."""

    def __init__(self):
        super().__init__()
        self.name = "counting"
        self.log = []
        self.jit_max_units = 0

    def _record(name):
        def method(self, *args, **kwargs):
            self.log.append(name)
            return getattr(NumpyBackend, name)(self, *args, **kwargs)
        return method

    matmul_into = _record("matmul_into")
    matmul_acc = _record("matmul_acc")
    lstm_cell_forward = _record("lstm_cell_forward")
    lstm_backward_factors = _record("lstm_backward_factors")
    lstm_cell_backward_step = _record("lstm_cell_backward_step")
    keep_where = _record("keep_where")
    to_numpy = _record("to_numpy")


def test_each_step_is_one_gemm_and_one_fused_cell_pass(rng):
    T, L, D = 7, 2, 2
    counting = CountingBackend()
    lstm = LSTM(3, 4, num_layers=L, bidirectional=True, device=counting, seed=0)
    x = rng.standard_normal((T, 2, 3)).astype(np.float32)
    y, _ = lstm.forward(x)
    # one host transfer (the NaN/Inf verdicts of the inputs), then per layer-direction
    # exactly T x (recurrent GEMM, fused cell) and nothing else
    assert counting.log == ["to_numpy"] + ["matmul_acc", "lstm_cell_forward"] * (T * L * D)
    counting.log.clear()
    lstm.backward(np.ones_like(y))
    # one pass for the local derivatives of the (here single) block of steps, then per step
    # one fused cell pass and one GEMM
    per_direction = (["lstm_backward_factors"] + ["lstm_cell_backward_step", "matmul_into"] * T
                     + ["matmul_acc"] * 2)
    want = ["to_numpy"]
    for _ in range(L):
        want += per_direction + ["matmul_into"] + per_direction + ["matmul_acc"]
    assert counting.log == want


class BlockedBackend(CountingBackend):
    """Backward's local derivatives in blocks of ``steps`` steps instead of one block."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def backward_block_steps(self, T, B, H, itemsize):
        return self.steps


@pytest.mark.parametrize("steps", [1, 3])
def test_backward_in_blocks_of_steps_equals_one_block(steps, rng):
    """Same gradients, bitwise, whatever the block size (8 steps: blocks do not divide T)."""
    T, B = 8, 4
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([8, 2, 5, 1])
    results = []
    for backend in (CountingBackend(), BlockedBackend(steps)):     # both the NumPy loop
        lstm = LSTM(3, 5, num_layers=2, bidirectional=True, dtype="float64", seed=3,
                    device=backend)
        for kw in (dict(), dict(lengths=lengths)):
            y, (h_n, c_n) = lstm.forward(x, **kw)
            dx, (dh0, dc0) = lstm.backward(np.cos(y), (h_n, c_n))
            results.append([dx, dh0, dc0] + [g.copy() for g in lstm.grads.values()])
    for want, got in zip(results[:2], results[2:]):
        for a, b in zip(want, got):
            np.testing.assert_array_equal(b, a)
    assert backend.log.count("lstm_backward_factors") == 2 * 4 * -(-T // steps)


def test_optimizer_state_follows_its_layers_to_another_device(strict, rng):
    layer = Linear(3, 2, dtype="float64", seed=0)
    opt = Adam([layer], lr=0.1)
    layer.grads["weight"][...] = 1.0
    layer.grads["bias"][...] = 1.0
    opt.step()
    layer.to(strict)
    opt.step()                       # Adam's moments move with the layer
    assert opt._slots and all(strict.owns(v) for v in opt._slots.values())
    reference = Linear(3, 2, dtype="float64", seed=0)
    ref_opt = Adam([reference], lr=0.1)
    for _ in range(2):
        reference.grads["weight"][...] = 1.0
        reference.grads["bias"][...] = 1.0
        ref_opt.step()
    np.testing.assert_allclose(strict.to_numpy(layer.params["weight"]), reference.params["weight"])


def test_direction_operands_are_checked_once_before_any_step(rng):
    """A fused kernel would read a float64 array given for a float32 one as garbage: the
    time loop's operands are checked (backend, dtype, shape, layout) before it starts."""
    from lstm_xp.bptt import direction_backward, direction_forward
    cpu = get_backend("cpu")
    T, B, I, H = 3, 2, 4, 5
    x = rng.standard_normal((T, B, I)).astype("float32")
    w = {"w_ih": rng.standard_normal((4 * H, I)).astype("float32"),
         "w_hh": rng.standard_normal((4 * H, H)).astype("float32")}
    h0 = np.zeros((B, H), "float32")
    bad = {"h0": (h0.astype("float64"), TypeError, "h0 must have dtype float32"),
           "c0": (np.zeros((B, H + 1), "float32"), ValueError, r"c0 must have shape \(2, 5\)"),
           "x": (np.asfortranarray(x), ValueError, "x must be C-contiguous")}
    for name, (value, error, message) in bad.items():
        args = dict(x=x, h0=h0, c0=h0)
        args[name] = value
        with pytest.raises(error, match=message):
            direction_forward(cpu, args["x"], w["w_ih"], w["w_hh"], None, None, args["h0"],
                              args["c0"], reverse=False)
    tape = direction_forward(cpu, x, w["w_ih"], w["w_hh"], None, None, h0, h0, reverse=False)
    grads = {k: np.zeros_like(v) for k, v in w.items()}
    dy = np.zeros((T, B, 2 * H), "float32")[:, :, ::2]          # not unit-stride rows
    with pytest.raises(ValueError, match="dy must have unit stride along its last axis and"):
        direction_backward(cpu, tape, w["w_ih"], w["w_hh"], dy, None, None, grads,
                           np.empty_like(x), accumulate_dx=False)
