"""CuPy backend: cuBLAS GEMMs plus one fused CUDA kernel per cell step.

Imported only when a GPU is asked for (``backends.get_backend("gpu")``); importing
``lstm_xp`` or using the CPU never touches this module. The kernels are in
``lstm_cell.cu`` beside this file and compiled with NVRTC on first use.
"""

from __future__ import annotations

from pathlib import Path

import cupy
import cupy.cublas
import numpy as np

from .base import Backend

_KERNEL_SOURCE = Path(__file__).with_name("lstm_cell.cu")
_CUDA_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_THREADS_PER_BLOCK = 256


class CupyBackend(Backend):
    """GPU backend, ``xp = cupy``, on CuPy's current device."""

    def __init__(self):
        super().__init__("gpu", cupy)
        self._module = None

    def asarray(self, a, dtype=None, copy=None):
        if copy:
            return cupy.array(a, dtype=dtype, copy=True)
        return cupy.asarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        return cupy.asnumpy(a)

    def owns(self, a) -> bool:
        return isinstance(a, cupy.ndarray)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    # ------------------------------------------------------------------- GEMMs
    def matmul_into(self, a, b, out) -> None:
        cupy.cublas.gemm("N", "N", a, b, out=out, alpha=1.0, beta=0.0)

    def matmul_acc(self, a, b, out) -> None:
        cupy.cublas.gemm("N", "N", a, b, out=out, alpha=1.0, beta=1.0)

    def keep_where(self, dst, src, hold) -> None:
        cupy.copyto(dst, src, where=hold)

    # ------------------------------------------------------------- fused cells
    def _kernel(self, name: str, dtype):
        if self._module is None:
            names = [f"{k}<{t}>" for k in ("lstm_cell_forward", "lstm_cell_backward")
                     for t in _CUDA_TYPES.values()]
            self._module = cupy.RawModule(code=_KERNEL_SOURCE.read_text(),
                                          options=("--std=c++17",), name_expressions=names)
        try:
            ctype = _CUDA_TYPES[np.dtype(dtype)]
        except KeyError:
            raise TypeError(f"the fused LSTM cell supports float32 and float64, got {dtype}") from None
        return self._module.get_function(f"{name}<{ctype}>")

    @staticmethod
    def _launch_shape(n: int):
        blocks = min((n + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK, 65535)
        return (max(blocks, 1),), (_THREADS_PER_BLOCK,)

    @staticmethod
    def _require_contiguous(*arrays) -> None:
        for a in arrays:
            if not a.flags.c_contiguous:
                raise ValueError("the fused LSTM cell needs C-contiguous arrays")

    def lstm_cell_forward(self, gates, c_prev, c, h) -> None:
        self._require_contiguous(gates, c_prev, c, h)
        B, H = c.shape
        grid, block = self._launch_shape(B * H)
        self._kernel("lstm_cell_forward", gates.dtype)(
            grid, block, (gates, c_prev, c, h, np.int64(B * H), np.int32(H)))

    def lstm_cell_backward(self, gates, c_prev, c, dh, dc) -> None:
        self._require_contiguous(gates, c_prev, c, dh, dc)
        B, H = c.shape
        grid, block = self._launch_shape(B * H)
        self._kernel("lstm_cell_backward", gates.dtype)(
            grid, block, (gates, c_prev, c, dh, dc, np.int64(B * H), np.int32(H)))
