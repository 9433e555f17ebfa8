"""The CUDA cell kernels checked without a GPU.

1. Each ``backends/*.cu`` compiles with NVRTC as CuPy 14's ``RawModule`` compiles it on
   an sm_90 device (CuPy's own option assembly, ``-ftz=true``, ``-arch=sm_90``,
   ``--device-as-default-execution-space``, a cubin; all but ``--pch``, a compile cache),
   and NVRTC lowers every name expression the backend asks for. Needs the real CuPy and NVRTC (``pip install ".[gpu-emulation]"``);
   CI sets LSTM_XP_REQUIRE_NVRTC=1 so that it cannot skip there.
2. The per-element device functions, compiled as plain C++ on this CPU and driven over
   every element, agree with the generic ``xp`` cell, padded rows and strided dy included:
   the kernel's own math and indexing, not a transcription of it, is what gets compared.
The launch wrappers (thread -> element mapping, argument marshalling) run on the emulated
device (``pytest --emulated-gpu -m gpu``).
"""

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from backends import Backend
from backends.cuda_source import COMPILE_OPTIONS, KERNELS, SOURCE_DIR, name_expressions

KERNEL_SOURCE = SOURCE_DIR / "lstm_cell.cu"


def _nvrtc_or_skip():
    try:
        import cupy._core.core as core
        from cupy.cuda import compiler
        compiler._get_nvrtc_version()
    except Exception as err:        # no CuPy, or CuPy without NVRTC
        if os.environ.get("LSTM_XP_REQUIRE_NVRTC") == "1":
            pytest.fail(f"LSTM_XP_REQUIRE_NVRTC=1 but CuPy's NVRTC is unusable: {err}")
        pytest.skip(f"CuPy with NVRTC is not installed ({err}): pip install '.[gpu-emulation]'")
    return core, compiler


def _nvrtc(core, compiler, source, options, method):
    """(cubin or PTX, lowered names) of ``source`` compiled as RawModule compiles it on an
    sm_90 device (cupy/cuda/compiler.py: _compile_with_cache_cuda adds -ftz=true,
    _compile_using_nvrtc the arch and execution space; the device query it would make for
    the arch is the one step replaced here)."""
    names = sorted(name_expressions(source).values())
    options = core.assemble_cupy_compiler_options(options) + (
        "-ftz=true", "-arch=sm_90", "--device-as-default-execution-space")
    program = compiler._NVRTCProgram((SOURCE_DIR / source).read_text(), source,
                                     name_expressions=names, method=method)
    return program.compile(options)


@pytest.mark.parametrize("source", sorted(KERNELS))
def test_kernels_compile_with_nvrtc_as_cupy_does(source):
    core, compiler = _nvrtc_or_skip()
    names = sorted(name_expressions(source).values())
    cubin, lowered = _nvrtc(core, compiler, source, COMPILE_OPTIONS[source], "cubin")
    assert len(cubin) > 0
    assert sorted(lowered) == names
    for name in names:                       # a mangled C++ symbol per instantiation
        assert lowered[name].startswith("_Z"), (name, lowered[name])
    assert len(set(lowered.values())) == len(names)


def test_optimizer_kernels_fuse_no_multiply_adds():
    """optimizers.cu is compiled with --fmad=false so that the fused steps round as the
    generic ones (backends/cuda_source.py says why): its PTX has no fma instruction, where
    the same source with NVRTC's default options has them (the check can fail)."""
    core, compiler = _nvrtc_or_skip()
    default = dict(COMPILE_OPTIONS)["optimizers.cu"]
    default = tuple(o for o in default if not o.lstrip("-").startswith("fmad"))
    fused, _ = _nvrtc(core, compiler, "optimizers.cu", default, "ptx")
    unfused, _ = _nvrtc(core, compiler, "optimizers.cu", COMPILE_OPTIONS["optimizers.cu"], "ptx")
    fused, unfused = (p.decode() if isinstance(p, bytes) else p for p in (fused, unfused))
    assert "fma.rn.ftz.f32" in fused and "fma.rn.f64" in fused     # -ftz=true: CuPy's
    assert "fma." not in unfused
    assert "mul.rn.ftz.f32" in unfused and "mul.rn.f64" in unfused


HOST_HARNESS = r"""
#include <cmath>
using std::tanh;
#define LSTM_XP_HOST_ONLY
#include "lstm_cell.cu"

#define HARNESS(T, SUFFIX)                                                                    \
extern "C" void forward_##SUFFIX(T* g, const T* cp, T* c, T* h, const T* hp, const bool* hold, \
                                 long long BH, int H, int keep) {                             \
    for (long long n = 0; n < BH; ++n) cell_forward_element<T>(n, H, g, cp, c, h, hp, hold, keep); } \
extern "C" void factors_##SUFFIX(T* g, const T* cp, const T* c, T* a, T* f, const bool* hold, \
                                 long long SBH, int H) {                                      \
    for (long long n = 0; n < SBH; ++n) backward_factors_element<T>(n, H, g, cp, c, a, f, hold); } \
extern "C" void backward_##SUFFIX(T* k, const T* a, const T* f, T* dh, const T* dy,          \
                                  long long dy_ld, T* dc, const bool* hold, long long BH, int H) { \
    for (long long n = 0; n < BH; ++n)                                                        \
        cell_backward_element<T>(n, H, k, a, f, dh, dy, dy_ld, dc, hold); }
HARNESS(float, float32)
HARNESS(double, float64)
"""


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the host emulation of the kernel")
    d = tmp_path_factory.mktemp("kernel")
    (d / "harness.cpp").write_text(HOST_HARNESS)
    lib = d / "libcell.so"
    out = subprocess.run([cxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-I",
                          str(KERNEL_SOURCE.parent), str(d / "harness.cpp"), "-o", str(lib)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return ctypes.CDLL(str(lib))


def _ptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("S,B,H", [(1, 1, 1), (2, 3, 7), (3, 8, 32)])
def test_kernel_element_math_matches_generic_cell(host_kernels, dtype, S, B, H, padded, rng):
    """S forward steps, the factors of all S at once, then the backward of the last step,
    with dy a strided view (rows 2H apart, as one direction of a bidirectional output)."""
    generic = Backend("generic-numpy", np)
    gates = (rng.standard_normal((S, B, 4 * H)) * 6).astype(dtype)
    c0, h0 = (rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc = rng.standard_normal((B, H)).astype(dtype)
    dy_both = rng.standard_normal((B, 2 * H)).astype(dtype)
    dy = dy_both[:, H:]
    hold = (rng.random((S, B, 1)) < 0.5) if padded else None
    BH, SBH = ctypes.c_longlong(B * H), ctypes.c_longlong(S * B * H)

    results = []
    for run in ("generic", "kernel"):
        g, dh_io, dc_io = gates.copy(), dh.copy(), dc.copy()
        c, h = np.empty((S + 1, B, H), dtype), np.empty((S + 1, B, H), dtype)
        c[0], h[0] = c0, h0
        alpha, f = np.empty((S, B, H), dtype), np.empty((S, B, H), dtype)
        held = [None if hold is None else np.ascontiguousarray(hold[s]) for s in range(S)]
        if run == "generic":
            for s in range(S):
                generic.lstm_cell_forward(g[s], c[s], c[s + 1], h[s + 1], h[s], held[s])
            acts = g.copy()
            generic.lstm_backward_factors(g, c[:S], c[1:], alpha, f, hold)
            factors = g.copy()
            generic.lstm_cell_backward_step(g[S - 1], alpha[S - 1], f[S - 1], dh_io, dc_io,
                                            dy, held[S - 1])
        else:
            fwd, fac, bwd = (getattr(host_kernels, f"{k}_{dtype}")
                             for k in ("forward", "factors", "backward"))
            for s in range(S):
                pre = g[s].copy()
                state = c[s + 1].copy(), h[s + 1].copy()
                fwd(_ptr(g[s]), _ptr(c[s]), _ptr(c[s + 1]), _ptr(h[s + 1]), _ptr(h[s]),
                    _ptr(held[s]), BH, ctypes.c_int(H), ctypes.c_int(0))     # eval: no keep
                np.testing.assert_array_equal(g[s], pre)         # the gates left as they were
                evaluated = c[s + 1].copy(), h[s + 1].copy()
                c[s + 1], h[s + 1] = state
                fwd(_ptr(g[s]), _ptr(c[s]), _ptr(c[s + 1]), _ptr(h[s + 1]), _ptr(h[s]),
                    _ptr(held[s]), BH, ctypes.c_int(H), ctypes.c_int(1))
                np.testing.assert_array_equal(c[s + 1], evaluated[0])   # and the same state
                np.testing.assert_array_equal(h[s + 1], evaluated[1])
            acts = g.copy()
            fac(_ptr(g), _ptr(c[:S]), _ptr(c[1:]), _ptr(alpha), _ptr(f), _ptr(hold), SBH,
                ctypes.c_int(H))
            factors = g.copy()
            bwd(_ptr(g[S - 1]), _ptr(alpha[S - 1]), _ptr(f[S - 1]), _ptr(dh_io), _ptr(dy),
                ctypes.c_longlong(2 * H), _ptr(dc_io), _ptr(held[S - 1]), BH, ctypes.c_int(H))
        results.append((acts, c, h, factors, alpha, f, g, dc_io, dh_io))
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-13, atol=1e-14)
    names = ("activations", "c", "h", "factors", "alpha", "f", "da", "dc_prev", "dh_t")
    for name, want, got in zip(names, *results):
        np.testing.assert_allclose(got, want, err_msg=name, **tol)
    if padded:           # held rows: the state copied exactly, factors zero, f = 1
        acts_c, h_k = results[1][1], results[1][2]
        for s in range(S):
            rows = hold[s, :, 0]
            assert np.array_equal(acts_c[s + 1][rows], acts_c[s][rows])
            assert np.array_equal(h_k[s + 1][rows], h_k[s][rows])
        assert np.all(results[1][3][hold[..., 0]] == 0)
        assert np.all(results[1][5][hold[..., 0]] == 1)
