"""Stand-in for CuPy on an emulated CUDA device (tests only).

Device arrays are NumPy arrays in guarded allocations, CUDA kernels are compiled as C++
and run thread by thread, cuBLAS is a reference BLAS under CuPy's own cupy/cublas.py. A
passing run is evidence about the GPU path's logic, not its numerics, races or speed: see
the docstring of the ``_gpu_emulator`` package beside this one. ``cupy._emulator`` is the
emulator's own API (event records, live allocations).
"""

from numpy import (bool, bool_, complex64, complex128, dtype, e, finfo, float16,  # noqa: F401
                   float32, float64, iinfo, inf, int8, int16, int32, int64, intp, nan,
                   newaxis, pi, uint8, uint16, uint32, uint64, uintp)

from _gpu_emulator.array import ndarray  # noqa: F401
from _gpu_emulator.functions import NAMESPACE as _NAMESPACE
from _gpu_emulator.kernels import RawKernel, RawModule  # noqa: F401
from _gpu_emulator.memory import get_default_memory_pool  # noqa: F401

globals().update(_NAMESPACE)    # asarray, zeros, tanh, sum, ... (shadowing builtins, as CuPy)

from . import _core, cuda, random  # noqa: E402,F401

__version__ = "14.2.0+emulated"


def is_available() -> bool:
    """The emulated device is always there."""
    return True


def show_config(*, _full=False) -> None:
    """What ``cupy.show_config()`` prints, for the emulated device."""
    print("CuPy Version          : emulated (tests/emulated_gpu: NumPy arrays, kernels as C++)")
    import numpy
    print(f"NumPy Version         : {numpy.__version__}")
