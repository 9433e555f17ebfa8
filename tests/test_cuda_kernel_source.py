"""The CUDA cell kernels checked without a GPU.

1. ``backends/lstm_cell.cu`` compiles for the GPU (nvcc, PTX for sm_90) with both dtypes
   instantiated, so a typo cannot wait for the first GPU session to show up.
2. The per-element device functions, compiled as plain C++ on this CPU and driven over
   every element, agree with the generic ``xp`` cell: the kernel's own math and indexing,
   not a transcription of it, is what gets compared.
The launch wrappers (thread -> element mapping) are left to the ``gpu``-marked tests.
"""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from backends import Backend

KERNEL = Path(__file__).resolve().parents[1] / "backends" / "lstm_cell.cu"

HOST_HARNESS = r"""
#include <cmath>
using std::tanh;
#define LSTM_XP_HOST_ONLY
#include "lstm_cell.cu"

template <typename T>
static void forward_all(T* gates, const T* c_prev, T* c, T* h, long long BH, int H) {
    for (long long n = 0; n < BH; ++n) cell_forward_element(n, H, gates, c_prev, c, h);
}
template <typename T>
static void factors_all(T* gates, const T* c_prev, const T* c, T* alpha, T* f,
                        long long SBH, int H) {
    for (long long n = 0; n < SBH; ++n) backward_factors_element(n, H, gates, c_prev, c, alpha, f);
}
template <typename T>
static void backward_all(T* factors, const T* alpha, const T* f, const T* dh, T* dc,
                         long long BH, int H) {
    for (long long n = 0; n < BH; ++n) cell_backward_element(n, H, factors, alpha, f, dh, dc);
}
extern "C" {
void forward_float32(float* g, const float* cp, float* c, float* h, long long BH, int H) {
    forward_all(g, cp, c, h, BH, H); }
void forward_float64(double* g, const double* cp, double* c, double* h, long long BH, int H) {
    forward_all(g, cp, c, h, BH, H); }
void factors_float32(float* g, const float* cp, const float* c, float* a, float* f,
                     long long SBH, int H) { factors_all(g, cp, c, a, f, SBH, H); }
void factors_float64(double* g, const double* cp, const double* c, double* a, double* f,
                     long long SBH, int H) { factors_all(g, cp, c, a, f, SBH, H); }
void backward_float32(float* k, const float* a, const float* f, const float* dh, float* dc,
                      long long BH, int H) { backward_all(k, a, f, dh, dc, BH, H); }
void backward_float64(double* k, const double* a, const double* f, const double* dh,
                      double* dc, long long BH, int H) { backward_all(k, a, f, dh, dc, BH, H); }
}
"""

GPU_INSTANTIATIONS = r"""
#include "lstm_cell.cu"
template __global__ void lstm_cell_forward<float>(float*, const float*, float*, float*, long long, int);
template __global__ void lstm_cell_forward<double>(double*, const double*, double*, double*, long long, int);
template __global__ void lstm_backward_factors<float>(float*, const float*, const float*, float*, float*, long long, int);
template __global__ void lstm_backward_factors<double>(double*, const double*, const double*, double*, double*, long long, int);
template __global__ void lstm_cell_backward_step<float>(float*, const float*, const float*, const float*, float*, long long, int);
template __global__ void lstm_cell_backward_step<double>(double*, const double*, const double*, const double*, double*, long long, int);
"""


def test_kernel_compiles_for_the_gpu(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (CUDA toolkit) not installed")
    src = tmp_path / "instantiate.cu"
    src.write_text(GPU_INSTANTIATIONS)
    out = subprocess.run([nvcc, "--std=c++17", "-arch=sm_90", "--ptx", "-I", str(KERNEL.parent),
                          str(src), "-o", str(tmp_path / "cell.ptx")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ptx = (tmp_path / "cell.ptx").read_text()
    assert ptx.count(".entry") == 6


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the host emulation of the kernel")
    d = tmp_path_factory.mktemp("kernel")
    (d / "harness.cpp").write_text(HOST_HARNESS)
    lib = d / "libcell.so"
    out = subprocess.run([cxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-I", str(KERNEL.parent),
                          str(d / "harness.cpp"), "-o", str(lib)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return ctypes.CDLL(str(lib))


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("S,B,H", [(1, 1, 1), (2, 3, 7), (3, 8, 32)])
def test_kernel_element_math_matches_generic_cell(host_kernels, dtype, S, B, H, rng):
    """S forward steps, the factors of all S at once, then the backward of the last step."""
    generic = Backend("generic-numpy", np)
    gates = (rng.standard_normal((S, B, 4 * H)) * 6).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc = rng.standard_normal((B, H)).astype(dtype)
    BH, SBH = ctypes.c_longlong(B * H), ctypes.c_longlong(S * B * H)

    results = []
    for run in ("generic", "kernel"):
        g, dc_io = gates.copy(), dc.copy()
        c, h = np.empty((S + 1, B, H), dtype), np.empty((S, B, H), dtype)
        c[0] = c0
        alpha, f = np.empty((S, B, H), dtype), np.empty((S, B, H), dtype)
        if run == "generic":
            for s in range(S):
                generic.lstm_cell_forward(g[s], c[s], c[s + 1], h[s])
            acts = g.copy()
            generic.lstm_backward_factors(g, c[:S], c[1:], alpha, f)
            factors = g.copy()
            generic.lstm_cell_backward_step(g[S - 1], alpha[S - 1], f[S - 1], dh, dc_io)
        else:
            fwd, fac, bwd = (getattr(host_kernels, f"{k}_{dtype}")
                             for k in ("forward", "factors", "backward"))
            for s in range(S):
                fwd(_ptr(g[s]), _ptr(c[s]), _ptr(c[s + 1]), _ptr(h[s]), BH, ctypes.c_int(H))
            acts = g.copy()
            fac(_ptr(g), _ptr(c[:S]), _ptr(c[1:]), _ptr(alpha), _ptr(f), SBH, ctypes.c_int(H))
            factors = g.copy()
            bwd(_ptr(g[S - 1]), _ptr(alpha[S - 1]), _ptr(f[S - 1]), _ptr(dh), _ptr(dc_io), BH,
                ctypes.c_int(H))
        results.append((acts, c, h, factors, alpha, f, g, dc_io))
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-13, atol=1e-14)
    names = ("activations", "c", "h", "factors", "alpha", "f", "da", "dc_prev")
    for name, want, got in zip(names, *results):
        np.testing.assert_allclose(got, want, err_msg=name, **tol)
