"""A reference column-major BLAS over raw pointers (stands in for cuBLAS behind
``cupy_backends.cuda.libs.cublas``): what ``cupy/cublas.py``'s ``gemm`` calls, with the
argument order of cuBLAS and of CuPy's Cython binding.

``sgemm``/``dgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)``
computes C = alpha op(A) op(B) + beta C on column-major matrices (C is m x n with leading
dimension ldc; op(X) is X for CUBLAS_OP_N, X^T for CUBLAS_OP_T and, for real types,
CUBLAS_OP_C). Raises CUBLASError(CUBLAS_STATUS_INVALID_VALUE) with the reason where
cuBLAS documents that status for cublas<t>gemm: m, n or k < 0; an unknown op; lda <
max(1, m) for op N (else max(1, k)); ldb < max(1, k) for op N (else max(1, n)); ldc <
max(1, m). And where a GPU's behaviour would be undefined: an operand whose extent (from
its pointer over all its columns) is not inside one live allocation; C overlapping A or B;
alpha/beta given as device addresses in host pointer mode or as host addresses in device
pointer mode. As cuBLAS, C is not read when beta == 0 (NaN there does not propagate).

Math modes (``setMathMode``/``getMathMode``, per handle): under CUBLAS_TF32_TENSOR_OP_MATH,
sgemm rounds A and B to TF32 first, a 10-bit mantissa, by truncation (``tf32``: the larger
of the errors a tensor core's conversion may make), then multiplies as before.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import events
from .device import cublas_handles
from .kernels import SKIP_WORK
from .memory import check_guards, find_allocation

CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C = 0, 1, 2
CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE = 0, 1
CUBLAS_STATUS_NOT_INITIALIZED, CUBLAS_STATUS_INVALID_VALUE = 1, 7
CUBLAS_DEFAULT_MATH, CUBLAS_TENSOR_OP_MATH, CUBLAS_PEDANTIC_MATH = 0, 1, 2
CUBLAS_TF32_TENSOR_OP_MATH = 3
_MODES: dict[int, int] = {}
_MATH: dict[int, int] = {}


class CUBLASError(RuntimeError):
    """A cuBLAS call failed (stands in for ``cupy_backends.cuda.libs.cublas.CUBLASError``)."""

    def __init__(self, status, reason: str = ""):
        self.status = status
        super().__init__(f"CUBLAS_STATUS {status}" + (f": {reason}" if reason else ""))


def _check_handle(handle) -> int:
    if handle not in cublas_handles():
        raise CUBLASError(CUBLAS_STATUS_NOT_INITIALIZED, f"{handle!r} is not a cuBLAS handle")
    return handle


def getPointerMode(handle) -> int:
    return _MODES.get(_check_handle(handle), CUBLAS_POINTER_MODE_HOST)


def setPointerMode(handle, mode) -> None:
    if mode not in (CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE):
        raise CUBLASError(CUBLAS_STATUS_INVALID_VALUE, f"pointer mode {mode!r}")
    _MODES[_check_handle(handle)] = mode


def getMathMode(handle) -> int:
    return _MATH.get(_check_handle(handle), CUBLAS_DEFAULT_MATH)


def setMathMode(handle, mode) -> None:
    if not isinstance(mode, int) or mode & ~0x1F or mode & 0xF > CUBLAS_TF32_TENSOR_OP_MATH:
        raise CUBLASError(CUBLAS_STATUS_INVALID_VALUE, f"math mode {mode!r}")
    _MATH[_check_handle(handle)] = mode


def tf32(a: np.ndarray) -> np.ndarray:
    """float32 ``a`` with its 23-bit mantissa cut to TF32's 10 bits (toward zero)."""
    return (np.ascontiguousarray(a, np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
            ).view(np.float32)


def _scalar(call: str, what: str, ptr: int, dtype: np.dtype, mode: int):
    """alpha or beta, read from where the pointer mode says it is."""
    alloc = find_allocation(ptr, dtype.itemsize)
    if mode == CUBLAS_POINTER_MODE_DEVICE:
        if alloc is None:
            raise CUBLASError(CUBLAS_STATUS_INVALID_VALUE, f"{call}: {what} at {ptr:#x} is not "
                              f"in device memory, but the pointer mode is DEVICE")
        return np.ndarray((), dtype, buffer=alloc.buffer, offset=ptr - alloc.buffer.ctypes.data)[()]
    if alloc is not None:
        raise CUBLASError(CUBLAS_STATUS_INVALID_VALUE, f"{call}: {what} is in device memory "
                          f"({alloc.label}), but the pointer mode is HOST")
    return np.frombuffer((ctypes.c_char * dtype.itemsize).from_address(ptr), dtype)[0]


def _matrix(call: str, what: str, ptr: int, rows: int, cols: int, ld: int, dtype: np.dtype):
    """The column-major rows x cols matrix at ``ptr`` (leading dimension ``ld``) as a
    NumPy view of the one allocation it must lie in."""
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), dtype)
    extent = ((cols - 1) * ld + rows) * dtype.itemsize
    alloc = find_allocation(ptr, extent)
    if alloc is None:
        raise CUBLASError(CUBLAS_STATUS_INVALID_VALUE,
                          f"{call}: {what} ({rows} x {cols}, leading dimension {ld}) spans "
                          f"{extent} bytes from {ptr:#x}, which are not inside one live "
                          f"allocation")
    return np.ndarray((rows, cols), dtype, buffer=alloc.buffer,
                      offset=ptr - alloc.buffer.ctypes.data,
                      strides=(dtype.itemsize, ld * dtype.itemsize))


def _gemm(call, dtype, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    events.emit("gemm", call)
    if SKIP_WORK:
        return
    dtype = np.dtype(dtype)
    mode = getPointerMode(handle)

    def invalid(reason):
        raise CUBLASError(CUBLAS_STATUS_INVALID_VALUE, f"{call}: {reason}")

    if min(m, n, k) < 0:
        invalid(f"negative size m={m}, n={n}, k={k}")
    ops = (CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C)
    if transa not in ops or transb not in ops:
        invalid(f"unknown operation transa={transa!r}, transb={transb!r}")
    a_rows, a_cols = (m, k) if transa == CUBLAS_OP_N else (k, m)
    b_rows, b_cols = (k, n) if transb == CUBLAS_OP_N else (n, k)
    for what, ld, rows in (("lda", lda, a_rows), ("ldb", ldb, b_rows), ("ldc", ldc, m)):
        if ld < max(1, rows):
            invalid(f"{what}={ld} < max(1, {rows}), the rows of that operand's storage")
    a = _matrix(call, "A", A, a_rows, a_cols, lda, dtype)
    b = _matrix(call, "B", B, b_rows, b_cols, ldb, dtype)
    c = _matrix(call, "C", C, m, n, ldc, dtype)
    if c.size and (np.may_share_memory(c, a) or np.may_share_memory(c, b)):
        invalid("C overlaps A or B")
    alpha = _scalar(call, "alpha", alpha, dtype, mode)
    beta = _scalar(call, "beta", beta, dtype, mode)
    if dtype == np.float32 and getMathMode(handle) & 0xF == CUBLAS_TF32_TENSOR_OP_MATH:
        a, b = tf32(a), tf32(b)
    product = (a if transa == CUBLAS_OP_N else a.T) @ (b if transb == CUBLAS_OP_N else b.T)
    c[...] = alpha * product if beta == 0 else alpha * product + beta * c
    check_guards(f"cuBLAS {call}")


def sgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) -> None:
    _gemm("sgemm", np.float32, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta,
          C, ldc)


def dgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) -> None:
    _gemm("dgemm", np.float64, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta,
          C, ldc)
