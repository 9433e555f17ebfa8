"""The emulated CUDA device catches what it claims to: planted defects, each beside the
correct version of the same thing (so that every check can fail both ways).

Runs only with the emulator first on the path (PYTHONPATH=tests/emulated_gpu pytest -m gpu);
skips elsewhere.
"""

import importlib.util
import os
import weakref
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
_EMULATOR = Path(__file__).resolve().parent / "emulated_gpu"
_spec = importlib.util.find_spec("cupy")
if _spec is None or not Path(_spec.origin).resolve().is_relative_to(_EMULATOR):
    pytest.skip("tests of the emulated device: pytest --emulated-gpu -m gpu",
                allow_module_level=True)

import cupy  # noqa: E402
import cupy.cublas  # noqa: E402
from cupy import _emulator  # noqa: E402
from cupy.cuda.compiler import CompileException  # noqa: E402
from cupy_backends.cuda.libs import cublas  # noqa: E402

SCALE = r"""
extern "C" __global__ void scale(float* x, int n, float by) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= by;
}
"""


def kernel(body: str, params: str = "float* x, int n"):
    return cupy.RawKernel(f'extern "C" __global__ void k({params}) {{ {body} }}', "k")


def test_kernels_run_every_thread_of_the_grid():
    x = cupy.asarray(np.arange(10, dtype=np.float32))
    cupy.RawKernel(SCALE, "scale")((3,), (4,), (x, np.int32(10), np.float32(2)))
    np.testing.assert_array_equal(x.get(), np.arange(10) * 2)


@pytest.mark.parametrize("bound, defect", [("i < n", False), ("i <= n", True)])
def test_out_of_bounds_write_hits_a_guard(bound, defect):
    x = cupy.zeros(8, dtype=cupy.float32)
    k = kernel(f"int i = threadIdx.x; if ({bound}) x[i] = 1.0f;")
    if defect:
        with pytest.raises(AssertionError, match=r"kernel k wrote out of bounds: .* after .*"
                                                 r"float32 \(8,\)"):
            k((1,), (32,), (x, np.int32(8)))
    else:
        k((1,), (32,), (x, np.int32(8)))
        assert x.get().sum() == 8


def test_out_of_bounds_read_and_fresh_memory_are_nan():
    x = cupy.ones(4, dtype=cupy.float32)
    y = cupy.zeros(4, dtype=cupy.float32)
    k = kernel("int i = threadIdx.x; if (i < n) y[i] = x[i + 1];",
               "const float* x, float* y, int n")
    k((1,), (4,), (x, y, np.int32(4)))
    got = y.get()
    assert (got[:3] == 1).all() and np.isnan(got[3])        # read the guard past x
    assert np.isnan(cupy.empty((3, 2)).get()).all()         # nobody wrote it


@pytest.mark.parametrize("value, ok", [(np.int32(8), True), (np.int64(8), False), (8, False),
                                       (8.0, False), (None, False)])
def test_scalar_arguments_need_the_parameters_exact_width(value, ok):
    x = cupy.zeros(8, dtype=cupy.float32)
    k = cupy.RawKernel(SCALE, "scale")
    if ok:
        k((1,), (8,), (x, value, np.float32(1)))
    else:
        with pytest.raises(TypeError, match=r"kernel scale: argument 1 \(int\)"):
            k((1,), (8,), (x, value, np.float32(1)))


def test_python_scalars_go_as_cupy_14_passes_them():
    x = cupy.zeros(1, dtype=cupy.float32)
    kernel("if (flag) x[0] = 1.0f;", "float* x, bool flag")((1,), (1,), (x, True))   # bool_
    assert x.get()[0] == 1
    kernel("x[0] = (float)n;", "float* x, long long n")((1,), (1,), (x, 7))          # int64
    assert x.get()[0] == 7
    with pytest.raises(TypeError, match=r"argument 1 \(int\) takes int32.*passed as bool"):
        kernel("x[0] = n;")((1,), (1,), (x, True))
    with pytest.raises(TypeError, match=r"argument 1 \(long long\) takes int64.*passed as uint64"):
        kernel("x[0] = (float)n;", "float* x, long long n")((1,), (1,), (x, 2 ** 63))


_KEEP: dict = {}       # a device array whose address the cases below pass as an int


@pytest.mark.parametrize("array, error", [
    (lambda: cupy.zeros(8, dtype=cupy.float32), None),
    (lambda: cupy.zeros(8, dtype=cupy.float64), r"argument 0 \(float\*\) needs a float32"),
    (lambda: np.zeros(8, dtype=np.float32), r"argument 0 \(float\*\): a NumPy array"),
    (lambda: 5.0, r"argument 0 \(float\*\) is a pointer"),
    (lambda: 5, r"argument 0 \(float\*\): address 0x5 is not inside a live device alloc"),
    (lambda: _KEEP.setdefault("x", cupy.zeros(9, dtype=cupy.float32)).data.ptr, None),
    (lambda: _KEEP.setdefault("x", cupy.zeros(9, dtype=cupy.float32)).data.ptr + 2,
     r"argument 0 \(float\*\): address 0x[0-9a-f]+ is not aligned to 4 bytes"),
])
def test_pointer_arguments_need_device_arrays_of_the_pointee_type(array, error):
    """A device array of the pointee's dtype, or a raw address inside a live allocation."""
    k = cupy.RawKernel(SCALE, "scale")
    if error is None:
        k((1,), (8,), (array(), np.int32(8), np.float32(1)))
    else:
        with pytest.raises(TypeError, match=error):
            k((1,), (8,), (array(), np.int32(8), np.float32(1)))


def test_argument_count_is_checked():
    with pytest.raises(TypeError, match=r"kernel scale takes 3 arguments .* got 2"):
        cupy.RawKernel(SCALE, "scale")((1,), (1,), (cupy.zeros(1, cupy.float32), np.int32(1)))


@pytest.mark.parametrize("grid, block, error", [
    ((1,), (1024,), None), ((2, 3, 4), (8, 8, 16), None), ((1, 65535), (1,), None),
    ((0,), (32,), ValueError), ((1,), (2048,), ValueError), ((1,), (512, 4), ValueError),
    ((1,), (1, 1, 65), ValueError), ((1, 65536), (1,), ValueError), ([1], (1,), TypeError),
])
def test_launch_shapes_within_cuda_limits(grid, block, error):
    x = cupy.zeros(1, dtype=cupy.float32)
    k = cupy.RawKernel(SCALE, "scale")
    if error is None:
        k(grid, block, (x, np.int32(1), np.float32(1)))
    else:
        with pytest.raises(error, match="kernel scale"):
            k(grid, block, (x, np.int32(1), np.float32(1)))


@pytest.mark.parametrize("body, defect", [
    ("out[blockIdx.x * blockDim.x + threadIdx.x] = blockIdx.x * blockDim.x + threadIdx.x;", False),
    ("out[0] = blockIdx.x * blockDim.x + threadIdx.x;", True),       # last writer wins
])
def test_order_dependent_kernels_fail_the_reversed_run(body, defect):
    out = cupy.zeros(8, dtype=cupy.int32)
    k = kernel(body, "int* out")
    if defect:
        with pytest.raises(AssertionError, match="kernel k depends on the order"):
            k((2,), (4,), (out,))
    else:
        k((2,), (4,), (out,))
        np.testing.assert_array_equal(out.get(), np.arange(8))


MULTIPLY_ADD = r"""
extern "C" __global__ void mad(float* out, const float* a, const float* b, const float* c) {
    out[0] = a[0] * b[0] + c[0];
}
"""


@pytest.mark.parametrize("options", [(), ("--fmad=true",), ("--fmad=false",),
                                     ("--use_fast_math", "-fmad=false")])
def test_multiply_adds_fuse_as_nvrtc_would_in_fma_mode(options):
    """(1 + 2**-12)**2 - 1 is 2**-11 + 2**-24 with one rounding (a fused multiply-add) and
    2**-11 with two. With --emulated-fma the emulator fuses wherever NVRTC would (by
    default, unless --fmad=false comes last); without it, never."""
    one = np.float32(1 + 2.0 ** -12)
    a, b, c = (cupy.asarray(np.array([v], np.float32)) for v in (one, one, -1.0))
    out = cupy.empty(1, dtype=cupy.float32)
    cupy.RawModule(code=MULTIPLY_ADD, options=options).get_function("mad")(
        (1,), (1,), (out, a, b, c))
    fmad = "--fmad=false" not in options and "-fmad=false" not in options
    fused = os.environ.get("CUPY_EMULATOR_FMA") == "1" and fmad
    assert out.get()[0] == (2.0 ** -11 + 2.0 ** -24 if fused else 2.0 ** -11)


@pytest.mark.parametrize("feature", ["__syncthreads();", "__shared__ float s[4];",
                                     "atomicAdd(x, 1.0f);"])
def test_block_level_features_do_not_compile(feature):
    with pytest.raises(CompileException, match="does not support"):
        kernel(feature)((1,), (1,), (cupy.zeros(1, cupy.float32), np.int32(1)))


def test_kernels_without_c_linkage_need_name_expressions():
    code = "template <typename T> __global__ void fill(T* x, T v) { x[threadIdx.x] = v; }"
    x = cupy.zeros(4, dtype=cupy.float64)
    module = cupy.RawModule(code=code, options=("--std=c++17",), name_expressions=["fill<double>"])
    module.get_function("fill<double>")((1,), (4,), (x, np.float64(3)))
    assert (x.get() == 3).all()
    with pytest.raises(RuntimeError, match="named symbol not found"):
        cupy.RawModule(code=SCALE.replace('extern "C" ', "")).get_function("scale")


# ---------------------------------------------------------------- cuBLAS stand-in
@pytest.fixture
def gemm_operands():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    return (a, b, cupy.asarray(np.asfortranarray(a)), cupy.asarray(np.asfortranarray(b)),
            cupy.zeros((3, 5), dtype=cupy.float64, order="F"))


def _address(scalar):
    return scalar.data.ptr if isinstance(scalar, cupy.ndarray) else scalar.ctypes.data


def _dgemm(A, B, C, m=3, n=5, k=4, lda=3, ldb=4, ldc=3, b_offset=0, alpha=np.array(1.0),
           beta=np.array(0.0), mode=cublas.CUBLAS_POINTER_MODE_HOST):
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setPointerMode(handle, mode)
    try:
        cublas.dgemm(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, m, n, k, _address(alpha),
                     A.data.ptr, lda, B.data.ptr + b_offset, ldb, _address(beta), C.data.ptr,
                     ldc)
    finally:
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)


@pytest.mark.parametrize("defect, match", [
    ({}, None),
    ({"ldc": 2}, r"ldc=2 < max\(1, 3\)"),
    ({"lda": 2}, r"lda=2 < max\(1, 3\)"),
    ({"b_offset": 8}, r"B \(4 x 5, leading dimension 4\) .* not inside one live allocation"),
    ({"n": 6}, r"not inside one live allocation"),
    ({"mode": cublas.CUBLAS_POINTER_MODE_DEVICE}, r"alpha .* not in device memory"),
    ({"alpha": cupy.ones(())}, r"alpha is in device memory .* pointer mode is HOST"),
])
def test_reference_gemm_checks_cublas_preconditions(gemm_operands, defect, match):
    a, b, A, B, C = gemm_operands
    if match is None:
        _dgemm(A, B, C)
        np.testing.assert_allclose(C.get(), a @ b)
    else:
        with pytest.raises(cublas.CUBLASError, match=match):
            _dgemm(A, B, C, **defect)


def test_device_pointer_mode_reads_alpha_on_the_device(gemm_operands):
    a, b, A, B, C = gemm_operands
    C[...] = cupy.full((3, 5), np.nan)                   # beta == 0: C is not read
    _dgemm(A, B, C, alpha=cupy.asarray(2.0), beta=cupy.asarray(0.0),
           mode=cublas.CUBLAS_POINTER_MODE_DEVICE)
    np.testing.assert_allclose(C.get(), 2 * (a @ b))


def test_cupy_cublas_gemm_is_cupys_own_code(gemm_operands):
    a, b, A, B, _ = gemm_operands
    assert Path(cupy.cublas.gemm.__code__.co_filename).name == "cublas.py"
    assert not Path(cupy.cublas.gemm.__code__.co_filename).is_relative_to(_EMULATOR)
    out = cupy.zeros((5, 3))
    cupy.cublas.gemm("T", "T", B, A, out=out)              # C-ordered out: CuPy swaps
    np.testing.assert_allclose(out.get(), b.T @ a.T)


# ------------------------------------------------------------- host/device protocol
def _zero_d():
    return cupy.ones((), dtype=cupy.int64)


def _vector():
    return cupy.ones(3)


@pytest.mark.parametrize("convert, make", [
    (float, _zero_d), (int, _zero_d), (bool, _zero_d), (complex, _zero_d), (range, _zero_d),
    (list, _vector), (np.asarray, _vector),
    (lambda x: x + np.ones(3), _vector), (lambda x: np.ones(3) + x, _vector),
    (lambda x: cupy.maximum(x, np.ones(3)), _vector),
    (lambda x: np.maximum(np.ones(3), x), _vector),
    (lambda x: x.__setitem__(0, np.ones(())), _vector),
    (lambda x: cupy.where(x > 0, np.ones(3), x), _vector),
], ids=lambda f: getattr(f, "__name__", "f"))
def test_implicit_host_conversions_and_mixing_are_refused(convert, make):
    with pytest.raises(TypeError, match="NumPy|implicit|explicit|asnumpy"):
        convert(make())


def test_explicit_transfers_and_scalars_are_fine():
    x = cupy.ones(3, dtype=cupy.float32)
    y = x + np.float32(1) + 1.0                           # NEP 50: Python floats are weak
    assert y.dtype == cupy.float32
    assert float(y.get()[0]) == 3.0 and y[0].item() == 3.0 and y.tolist() == [3.0] * 3
    assert cupy.asnumpy(y).dtype == np.float32 and len(y) == 3


# ------------------------------------------------------------------------ counting
def test_a_known_sequence_gives_known_events():
    with _emulator.record() as log:
        x = cupy.asarray(np.ones((4, 3), np.float32))           # to_device
        y = cupy.zeros((4, 3), dtype=cupy.float32)               # elementwise fill
        view = x[1:].reshape(3, 3).T                             # free: views...
        copied = x.T.reshape(12)                                 # ...but this copies
        cupy.empty((2, 2))                                       # free
        y += x * 2.0                                             # multiply, add
        with _emulator.record() as inner:
            total = cupy.sum(y)                                  # reduction
        cupy.cublas.gemm("N", "T", x, y, out=cupy.empty((4, 4), cupy.float32))     # sgemm
        cupy.RawKernel(SCALE, "scale")((1,), (12,), (y, np.int32(12), np.float32(2)))
        cupy.asnumpy(total)                                      # sync, to_host
        cupy.cuda.get_current_stream().synchronize()            # sync
    assert view.shape == (3, 3) and copied.shape == (12,)
    assert [(e.kind, e.name) for e in log.events] == [
        ("to_device", "asarray"), ("elementwise", "fill"), ("elementwise", "reshape"),
        ("elementwise", "multiply"), ("elementwise", "add"), ("reduction", "sum"),
        ("gemm", "sgemm"), ("kernel", "scale"), ("sync", "asnumpy"), ("to_host", "asnumpy"),
        ("sync", "stream")]
    assert log.count("elementwise") == 4 and log.count("sync", "stream") == 1
    assert [e.kind for e in inner.events] == ["reduction"]


def test_the_backend_launches_one_forward_kernel_per_step(gpu):
    from lstm_xp import LSTM
    lstm = LSTM(3, 4, dtype="float32", seed=0, device="gpu")
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    with _emulator.record() as log:
        lstm.forward(x)
    forward = [e for e in log.events if e.kind == "kernel" and "forward" in e.name]
    assert len(forward) == 6 and log.count("to_device") >= 1


def test_freed_arrays_leave_the_registry():
    x = cupy.zeros(100)
    alloc = weakref.ref(x.data.mem)
    assert any(a is alloc() for a in _emulator.live_allocations())
    view = x[10:]
    del x
    assert alloc() is not None                  # a view keeps its allocation alive
    del view
    assert alloc() is None
