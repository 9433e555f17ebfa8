"""Stand-in for CuPy's cuBLAS binding: the reference BLAS of ``_gpu_emulator.blas``, with
cuBLAS's argument order, as CuPy's own cupy/cublas.py calls it. The math-mode constants are
left out on purpose: CuPy 14's binding for CUDA 13 does not export them (seen on an H200)."""

from _gpu_emulator.blas import (CUBLAS_OP_C, CUBLAS_OP_N, CUBLAS_OP_T,  # noqa: F401
                                CUBLAS_POINTER_MODE_DEVICE, CUBLAS_POINTER_MODE_HOST,
                                CUBLAS_STATUS_INVALID_VALUE, CUBLAS_STATUS_NOT_INITIALIZED,
                                CUBLASError, dgemm, getMathMode, getPointerMode, setMathMode,
                                setPointerMode, sgemm)
