"""CuPy backend: cuBLAS GEMMs plus one fused CUDA kernel per cell step and per optimizer step.

Imported only when a GPU is asked for (``backends.get_backend("gpu")``); importing
``lstm_xp`` or using the CPU never touches this module. The kernels are in the ``.cu``
files beside this file (``cuda_source.KERNELS``) and compiled with NVRTC when the backend
is created.
"""

from __future__ import annotations

import cupy
import cupy.cublas
import numpy as np

from .base import Backend
from .cuda_source import COMPILE_OPTIONS, KERNELS, SOURCE_DIR, name_expressions

_THREADS_PER_BLOCK = 256


class CupyBackend(Backend):
    """GPU backend, ``xp = cupy``, on CuPy's current device.

    The backward's local derivatives are computed for up to 64 MiB of gate rows per
    launch (usually the whole sequence): one launch per block, not per step.

    Construction compiles the cell kernels (NVRTC) and runs one cuBLAS GEMM, so that a
    missing CUDA library fails here, with a clear message from ``get_backend``, rather
    than inside the first time step.
    """

    backward_block_bytes = 1 << 26

    def __init__(self):
        super().__init__("gpu", cupy)
        self._kernels = {}
        for source in KERNELS:
            names = name_expressions(source)
            module = cupy.RawModule(code=(SOURCE_DIR / source).read_text(),
                                    options=COMPILE_OPTIONS[source],
                                    name_expressions=list(names.values()))
            self._kernels.update((key, module.get_function(name)) for key, name in names.items())
        self._zero_rows: dict = {}      # (device, B, H, dtype) -> zeros standing in for dy=None
        probe = cupy.ones((2, 2), dtype=cupy.float32)
        self.matmul_into(probe, probe.T, out=cupy.empty((2, 2), dtype=cupy.float32))
        self.synchronize()

    def asarray(self, a, dtype=None, copy=None):
        if copy:
            return cupy.array(a, dtype=dtype, copy=True, order="C")
        if copy is False and not (isinstance(a, cupy.ndarray)
                                  and (dtype is None or a.dtype == np.dtype(dtype))):
            raise ValueError("copy=False: this conversion needs a copy")
        return cupy.asarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        return cupy.asnumpy(a)

    def owns(self, a) -> bool:
        return isinstance(a, cupy.ndarray)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def describe(self) -> dict:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return {"cupy": cupy.__version__, "numpy": np.__version__,
                "gpu": name.decode() if isinstance(name, bytes) else str(name),
                "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}

    # ------------------------------------------------------------------- GEMMs
    @property
    def allow_tf32(self) -> bool:
        """As Backend.allow_tf32. Reads the math mode of CuPy's cuBLAS handle for the current
        device and thread."""
        from cupy_backends.cuda.libs import cublas
        mode = cublas.getMathMode(cupy.cuda.device.get_cublas_handle())
        return mode & 0xF == cublas.CUBLAS_TF32_TENSOR_OP_MATH

    @allow_tf32.setter
    def allow_tf32(self, on) -> None:
        """Let float32 GEMMs use TF32 tensor cores (Ampere and newer), or not: the math mode
        of CuPy's cuBLAS handle for the current device and thread (cupy.cublas.gemm, the
        per-step and weight-gradient GEMMs), and CuPy's float32 compute type for matmul
        (the input projections), which is process-wide. float64 GEMMs are unaffected."""
        if not isinstance(on, (bool, np.bool_)):
            raise TypeError(f"allow_tf32 must be True or False, got {on!r}")
        from cupy._core import _routines_linalg as linalg
        from cupy_backends.cuda.libs import cublas
        cublas.setMathMode(cupy.cuda.device.get_cublas_handle(),
                           cublas.CUBLAS_TF32_TENSOR_OP_MATH if on else cublas.CUBLAS_DEFAULT_MATH)
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if on
                                else linalg.COMPUTE_TYPE_DEFAULT)

    def matmul_into(self, a, b, out) -> None:
        cupy.cublas.gemm("N", "N", a, b, out=out, alpha=1.0, beta=0.0)

    def matmul_acc(self, a, b, out) -> None:
        cupy.cublas.gemm("N", "N", a, b, out=out, alpha=1.0, beta=1.0)

    def keep_where(self, dst, src, hold) -> None:
        cupy.copyto(dst, src, where=hold)

    # ---------------------------------------------------------------- randomness
    def manual_seed(self, seed) -> None:
        super().manual_seed(seed)
        self._device_random = cupy.random.default_rng(seed)

    def generator_state(self):
        return None        # CuPy's device generator state is not saved: see README, Checkpoints

    def dropout_mask(self, shape, p: float, dtype):
        """As Backend.dropout_mask, drawn on the device (no host transfer); CuPy's generator
        gives other masks than NumPy's for the same seed."""
        if p >= 1:
            return cupy.zeros(shape, dtype=dtype)
        mask = (self._device_random.random(shape, dtype=cupy.float64) >= p).astype(dtype)
        mask *= 1.0 / (1.0 - p)         # a Python float keeps the mask's dtype (NEP 50)
        return mask

    # ------------------------------------------------------------- collectives
    def allreduce_sum(self, flat, comm, MPI):
        """Through NCCL on the device where CuPy has it (one communicator per MPI
        communicator, its id sent by MPI), else through a host copy (Backend's)."""
        nccl_comm = self._nccl_for(comm, MPI)
        if nccl_comm is None:
            return super().allreduce_sum(flat, comm, MPI)
        from cupy.cuda import nccl
        out = cupy.empty_like(flat)
        kind = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                np.dtype(np.float64): nccl.NCCL_FLOAT64}[np.dtype(flat.dtype)]
        nccl_comm.allReduce(flat.data.ptr, out.data.ptr, flat.size, kind, nccl.NCCL_SUM,
                            cupy.cuda.get_current_stream().ptr)
        return out

    def _nccl_for(self, comm, MPI):
        """The NCCL communicator for ``comm``, or None on every rank if any rank cannot have
        one. Collective: each rank calls it at the same point. NCCL's setup is itself
        collective, so a rank that fell back alone would leave the others waiting inside
        NCCL: the ranks agree (MPI allreduce, MIN) before starting it and again after."""
        cache = self.__dict__.setdefault("_nccl", {})
        key = id(comm)
        if key in cache:
            return cache[key]
        try:
            from cupy.cuda import nccl
            uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
            ready = 1
        except Exception:                # CuPy built without NCCL, or NCCL not loadable
            nccl, uid, ready = None, None, 0
        nccl_comm = None
        if comm.allreduce(ready, op=MPI.MIN):
            uid = comm.bcast(uid, root=0)
            try:
                nccl_comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
            except Exception:            # NCCL failing to start on this rank
                nccl_comm = None
            if not comm.allreduce(int(nccl_comm is not None), op=MPI.MIN):
                if nccl_comm is not None:
                    nccl_comm.destroy()
                nccl_comm = None
        cache[key] = nccl_comm
        return nccl_comm

    def index_add(self, target, index, values) -> None:
        import cupyx
        cupyx.scatter_add(target, index, values)

    # ------------------------------------------------------------- fused cells
    def _kernel(self, name: str, dtype):
        try:
            return self._kernels[(name, np.dtype(dtype))]
        except KeyError:
            raise TypeError(f"the fused kernels support float32 and float64, got {dtype}") from None

    # ------------------------------------------------------------ optimizer steps
    @staticmethod
    def _fusable(*arrays) -> bool:
        """Whether the fused optimizer kernels, which index their arrays linearly, may take
        these: all C-contiguous, one dtype and size. A flat buffer always is; the
        per-array path (tied weights) may hand over a strided view."""
        first = arrays[0]
        return all(a.flags.c_contiguous and a.dtype == first.dtype and a.size == first.size
                   for a in arrays)

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov) -> None:
        if not self._fusable(p, g, *(() if velocity is None else (velocity,))):
            return super().sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov)
        T = p.dtype.type
        grid, block = self._launch_shape(p.size)
        if velocity is None:
            self._kernel("sgd_step", p.dtype)(grid, block, (p, g, np.int64(p.size), T(lr),
                                                            T(weight_decay)))
        else:
            self._kernel("sgd_momentum_step", p.dtype)(
                grid, block, (p, g, velocity, np.int64(p.size), T(lr), T(momentum),
                              T(weight_decay), np.int32(bool(nesterov))))

    def adam_update(self, p, g, m, v, step, lr, b1, b2, eps, weight_decay, decoupled) -> None:
        if not self._fusable(p, g, m, v):
            return super().adam_update(p, g, m, v, step, lr, b1, b2, eps, weight_decay,
                                       decoupled)
        T = p.dtype.type
        mode = 0 if not weight_decay else (2 if decoupled else 1)
        m_hat, v_hat = 1.0 / (1.0 - b1 ** step), 1.0 / (1.0 - b2 ** step)
        grid, block = self._launch_shape(p.size)
        self._kernel("adam_step", p.dtype)(
            grid, block, (p, g, m, v, np.int64(p.size), T(lr * m_hat), T(v_hat), T(b1),
                          T(1.0 - b1), T(b2), T(1.0 - b2), T(eps), T(weight_decay),
                          T(1.0 - lr * weight_decay), np.int32(mode)))

    @staticmethod
    def _launch_shape(n: int):
        blocks = min((n + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK, 65535)
        return (max(blocks, 1),), (_THREADS_PER_BLOCK,)

    # The three cell primitives below run once per time step, so they do no checks of
    # their own (each costs host time on the step's critical path): lstm_xp.bptt checks
    # every array's dtype, shape and layout once per direction (check_step_operands). The
    # kernels need C-contiguous (B, H) / (B, 4H) arrays of one dtype; dy only contiguous rows.

    def lstm_cell_forward(self, gates, c_prev, c, h, h_prev=None, hold=None) -> None:
        B, H = c.shape
        grid, block = self._launch_shape(B * H)
        if hold is None:
            self._kernel("lstm_cell_forward", gates.dtype)(
                grid, block, (gates, c_prev, c, h, np.int64(B * H), np.int32(H)))
        else:
            self._kernel("lstm_cell_forward_padded", gates.dtype)(
                grid, block, (gates, c_prev, c, h, h_prev, hold, np.int64(B * H), np.int32(H)))

    def lstm_backward_factors(self, gates, c_prev, c, alpha, f_keep, hold=None) -> None:
        n, H = c.size, c.shape[-1]
        grid, block = self._launch_shape(n)
        if hold is None:
            self._kernel("lstm_backward_factors", gates.dtype)(
                grid, block, (gates, c_prev, c, alpha, f_keep, np.int64(n), np.int32(H)))
        else:
            self._kernel("lstm_backward_factors_padded", gates.dtype)(
                grid, block, (gates, c_prev, c, alpha, f_keep, hold, np.int64(n), np.int32(H)))

    def lstm_cell_backward_step(self, factors, alpha, f, dh, dc, dy=None, hold=None) -> None:
        B, H = dc.shape
        if dy is None:
            dy = self._zeros_like_rows(B, H, dc.dtype)
        dy_ld = np.int64(dy.strides[0] // dy.itemsize)
        grid, block = self._launch_shape(B * H)
        if hold is None:
            self._kernel("lstm_cell_backward_step", factors.dtype)(
                grid, block, (factors, alpha, f, dh, dy, dy_ld, dc, np.int64(B * H), np.int32(H)))
        else:
            self._kernel("lstm_cell_backward_step_padded", factors.dtype)(
                grid, block, (factors, alpha, f, dh, dy, dy_ld, dc, hold, np.int64(B * H),
                              np.int32(H)))

    def _zeros_like_rows(self, B: int, H: int, dtype):
        key = (cupy.cuda.get_device_id(), B, H, np.dtype(dtype))     # a buffer per device
        if key not in self._zero_rows:
            if len(self._zero_rows) >= 16:
                self._zero_rows.clear()
            self._zero_rows[key] = cupy.zeros((B, H), dtype=dtype)
        return self._zero_rows[key]
