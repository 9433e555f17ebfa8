"""Stand-in for CuPy's cuBLAS binding: the reference BLAS of ``_gpu_emulator.blas``, with
cuBLAS's argument order, as CuPy's own cupy/cublas.py calls it."""

from _gpu_emulator.blas import (CUBLAS_DEFAULT_MATH, CUBLAS_OP_C, CUBLAS_OP_N,  # noqa: F401
                                CUBLAS_OP_T, CUBLAS_PEDANTIC_MATH, CUBLAS_POINTER_MODE_DEVICE,
                                CUBLAS_POINTER_MODE_HOST, CUBLAS_STATUS_INVALID_VALUE,
                                CUBLAS_STATUS_NOT_INITIALIZED, CUBLAS_TENSOR_OP_MATH,
                                CUBLAS_TF32_TENSOR_OP_MATH, CUBLASError, dgemm, getMathMode,
                                getPointerMode, setMathMode, setPointerMode, sgemm)
