"""The CUDA source of the GPU backend and what is compiled from it, without importing CuPy.

``lstm_cell.cu`` holds every custom kernel; the CuPy backend compiles it once with NVRTC
(``cupy.RawModule``) for float and double, and the tests compile the same source the same
way (tests/test_cuda_kernel_source.py) or as C++ on the CPU (the emulated device), which is
why the names live here and not in cupy_backend.py (importing that needs CUDA libraries).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KERNEL_SOURCE = Path(__file__).with_name("lstm_cell.cu")
CUDA_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}   # dtype -> C type
# the __global__ templates of lstm_cell.cu, each instantiated for every CUDA_TYPES entry
CELL_KERNELS = ("lstm_cell_forward", "lstm_cell_forward_padded", "lstm_backward_factors",
                "lstm_backward_factors_padded", "lstm_cell_backward_step",
                "lstm_cell_backward_step_padded")
COMPILE_OPTIONS = ("--std=c++17",)


def name_expressions() -> dict:
    """(kernel, dtype) -> the C++ name NVRTC lowers, e.g. ``lstm_cell_forward<float>``."""
    return {(k, t): f"{k}<{ctype}>" for k in CELL_KERNELS for t, ctype in CUDA_TYPES.items()}
