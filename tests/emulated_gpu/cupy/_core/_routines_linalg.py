"""Stand-in for ``cupy._core._routines_linalg``'s compute types: what ``cupy.matmul`` may
do to float32 inputs (COMPUTE_TYPE_TF32: round them to TF32 first, as the emulated sgemm
does under the TF32 math mode). The names and values are CuPy's."""

import numpy as _np

COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC = 0, 1, 2
COMPUTE_TYPE_FP16, COMPUTE_TYPE_FP32, COMPUTE_TYPE_FP64 = 3, 4, 5
COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32 = 6, 7
_TYPES = {"e": COMPUTE_TYPE_DEFAULT, "f": COMPUTE_TYPE_DEFAULT, "d": COMPUTE_TYPE_DEFAULT}


def _kind(dtype) -> str:
    char = _np.dtype(dtype).char
    kind = {"F": "f", "D": "d"}.get(char, char)
    if kind not in _TYPES:
        raise TypeError(f"dtype is not supported: {dtype}")
    return kind


def get_compute_type(dtype) -> int:
    return _TYPES[_kind(dtype)]


def set_compute_type(dtype, compute_type) -> None:
    if compute_type not in range(8):
        raise ValueError(f"Unknown compute type: {compute_type}")
    _TYPES[_kind(dtype)] = compute_type
