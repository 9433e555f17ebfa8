"""The CUDA sources of the GPU backend and what is compiled from them, without importing CuPy.

Every custom kernel is in a ``.cu`` file here (``lstm_cell.cu``: the cell; ``optimizers.cu``:
the fused optimizer steps); the CuPy backend compiles each once with NVRTC
(``cupy.RawModule``) for float and double, and the tests compile the same sources the same
way (tests/test_cuda_kernel_source.py) or as C++ on the CPU (the emulated device), which is
why the names live here and not in cupy_backend.py (importing that needs CUDA libraries).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CUDA_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}   # dtype -> C type
# each CUDA file beside this one and its __global__ templates, instantiated per CUDA_TYPES
KERNELS = {
    "lstm_cell.cu": ("lstm_cell_forward", "lstm_cell_forward_padded", "lstm_backward_factors",
                     "lstm_backward_factors_padded", "lstm_cell_backward_step",
                     "lstm_cell_backward_step_padded"),
    "optimizers.cu": ("sgd_step", "sgd_momentum_step", "adam_step"),
}
# NVRTC options per file. NVRTC fuses a*b + c into one multiply-add (one rounding) unless
# told --fmad=false:
# - optimizers.cu: --fmad=false. Its kernels are memory-bound (3-4 loads and 2-3 stores per
#   ~10 flops), so fusing saves nothing measurable; unfused, the fused step rounds exactly as
#   the generic xp version (one CuPy kernel per operation) and the two agree bit for bit.
# - lstm_cell.cu: fused (NVRTC's default). Its results differ from the generic version in the
#   last bits anyway (CUDA's expf/tanh are not the CPU's libm), so its tests use tolerances,
#   which hold with and without contraction (pytest --emulated-gpu [--emulated-fma] -m gpu).
COMPILE_OPTIONS = {"lstm_cell.cu": ("--std=c++17",),
                   "optimizers.cu": ("--std=c++17", "--fmad=false")}
SOURCE_DIR = Path(__file__).parent


def name_expressions(source: str) -> dict:
    """(kernel, dtype) -> the C++ name NVRTC lowers, e.g. ``lstm_cell_forward<float>``, for
    the kernels of ``source`` (a key of KERNELS)."""
    return {(k, t): f"{k}<{ctype}>" for k in KERNELS[source] for t, ctype in CUDA_TYPES.items()}
