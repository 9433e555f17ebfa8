"""CuPy backend: cuBLAS GEMMs plus one fused CUDA kernel per cell step and per optimizer step.

Imported only when a GPU is asked for (``backends.get_backend("gpu")``); importing
``lstm_xp`` or using the CPU never touches this module. The kernels are in the ``.cu``
files beside this file (``cuda_source.KERNELS``) and compiled with NVRTC when the backend
is created.
"""

from __future__ import annotations

from contextlib import contextmanager

import cupy
import cupy.cublas
import numpy as np

from .base import Backend
from .cuda_source import COMPILE_OPTIONS, KERNELS, SOURCE_DIR, name_expressions

_THREADS_PER_BLOCK = 256
# cublasMath_t (cublas_api.h); CuPy 14's binding for CUDA 13 does not export these names
_CUBLAS_DEFAULT_MATH, _CUBLAS_TF32_TENSOR_OP_MATH = 0, 3


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
        return mode & 0xF == _CUBLAS_TF32_TENSOR_OP_MATH

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
                           _CUBLAS_TF32_TENSOR_OP_MATH if on else _CUBLAS_DEFAULT_MATH)
        # CuPy's compute types (cupy/_core/_routines_linalg.pxd): DEFAULT 1, TF32 7
        linalg.set_compute_type(np.float32, getattr(linalg, "COMPUTE_TYPE_TF32", 7) if on
                                else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1))

    def transposed_operand(self, w):
        """A C-contiguous copy of w.T, made once per sequence and direction: cuBLAS then
        multiplies without transposing (op N), which on an H200 in float32 is 4x faster at
        B16-H128 (25.3 -> 6.6 us per step) and 5-25 % faster at H = 512; float64 the same
        either way (BENCHMARKS.md, scripts/gemm_layouts.py)."""
        return cupy.ascontiguousarray(w.T)

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

    # ------------------------------------------------------------ the time loops
    # The same launches as Backend's loops (one GEMM and one cell kernel per step), with the
    # per-step host work cut to integer arithmetic and two calls: addresses, leading
    # dimensions and launch shapes are worked out once per call; cuBLAS's binding is called
    # directly, the handle fetched (which sets its stream) and its pointer mode set once
    # per call rather than per GEMM as cupy.cublas.gemm does; the kernels get raw addresses,
    # not CuPy views. Arrays of another layout take Backend's loops.

    def lstm_forward_steps(self, gates, h, c, w_hh_t, hold, reverse: bool,
                           keep_activations: bool = True) -> None:
        T, B, G = gates.shape
        H = G // 4
        gemm = _RowGemm.make(w_hh_t, rows=B, a=h, out=gates, beta=1.0)
        if gemm is None or not (c.flags.c_contiguous and _rows_of_flags(hold)):
            return super().lstm_forward_steps(gates, h, c, w_hh_t, hold, reverse)
        keep = np.int32(bool(keep_activations))
        padded = hold is not None
        kernel = self._kernel("lstm_cell_forward_padded" if padded else "lstm_cell_forward",
                              gates.dtype)
        grid, block = self._launch_shape(B * H)
        n, width = np.int64(B * H), np.int32(H)
        g0, g_step = gates.data.ptr, gates.strides[0]
        h0, h_step = h.data.ptr, h.strides[0]
        c0, c_step = c.data.ptr, c.strides[0]
        k0, k_step = (hold.data.ptr, hold.strides[0]) if padded else (0, 0)
        prev, cur = (1, 0) if reverse else (0, 1)
        with gemm.session() as run_gemm:
            for t in (range(T - 1, -1, -1) if reverse else range(T)):
                g_t, h_prev = g0 + t * g_step, h0 + (t + prev) * h_step
                run_gemm(h_prev, g_t)                           # a_t += h_prev W_hh^T
                c_prev, c_t, h_t = c0 + (t + prev) * c_step, c0 + (t + cur) * c_step, \
                    h0 + (t + cur) * h_step
                if padded:
                    kernel(grid, block, (g_t, c_prev, c_t, h_t, h_prev, k0 + t * k_step, n,
                                         width, keep))
                else:
                    kernel(grid, block, (g_t, c_prev, c_t, h_t, n, width, keep))

    def lstm_backward_steps(self, factors, alpha, f_keep, dh, dc, w_hh, dy, hold,
                            reverse: bool) -> None:
        S, B, G = factors.shape
        H = G // 4
        dy_ok = dy is None or (dy.strides[2] == dy.itemsize and dy.strides[1] % dy.itemsize == 0
                               and dy.dtype == dh.dtype)
        gemm = _RowGemm.make(w_hh, rows=B, a=factors, out=dh,
                             beta=0.0 if hold is None else 1.0)
        if gemm is None or not (dy_ok and _rows_of_flags(hold) and all(
                a.flags.c_contiguous for a in (alpha, f_keep, dc))):
            return super().lstm_backward_steps(factors, alpha, f_keep, dh, dc, w_hh, dy, hold,
                                               reverse)
        padded = hold is not None
        kernel = self._kernel("lstm_cell_backward_step_padded" if padded
                              else "lstm_cell_backward_step", factors.dtype)
        grid, block = self._launch_shape(B * H)
        n, width = np.int64(B * H), np.int32(H)
        k0, k_step = factors.data.ptr, factors.strides[0]
        a0, a_step = alpha.data.ptr, alpha.strides[0]
        f0, f_step = f_keep.data.ptr, f_keep.strides[0]
        if dy is None:
            y0, y_step, y_ld = self._zeros_like_rows(B, H, dh.dtype).data.ptr, 0, H
        else:
            y0, y_step, y_ld = dy.data.ptr, dy.strides[0], dy.strides[1] // dy.itemsize
        y_ld = np.int64(y_ld)
        o0, o_step = (hold.data.ptr, hold.strides[0]) if padded else (0, 0)
        dh_ptr, dc_ptr = dh.data.ptr, dc.data.ptr
        with gemm.session() as run_gemm:
            for s in (range(S) if reverse else range(S - 1, -1, -1)):
                k_s = k0 + s * k_step
                if padded:
                    kernel(grid, block, (k_s, a0 + s * a_step, f0 + s * f_step, dh_ptr,
                                         y0 + s * y_step, y_ld, dc_ptr, o0 + s * o_step, n,
                                         width))
                else:
                    kernel(grid, block, (k_s, a0 + s * a_step, f0 + s * f_step, dh_ptr,
                                         y0 + s * y_step, y_ld, dc_ptr, n, width))
                run_gemm(k_s, dh_ptr)                  # dh (+)= da W_hh

    # The three cell primitives below run once per time step, so they do no checks of
    # their own (each costs host time on the step's critical path): lstm_xp.bptt checks
    # every array's dtype, shape and layout once per direction (check_step_operands). The
    # kernels need C-contiguous (B, H) / (B, 4H) arrays of one dtype; dy only contiguous rows.

    def lstm_cell_forward(self, gates, c_prev, c, h, h_prev=None, hold=None) -> None:
        B, H = c.shape
        grid, block = self._launch_shape(B * H)
        if hold is None:
            self._kernel("lstm_cell_forward", gates.dtype)(
                grid, block, (gates, c_prev, c, h, np.int64(B * H), np.int32(H), np.int32(1)))
        else:
            self._kernel("lstm_cell_forward_padded", gates.dtype)(
                grid, block, (gates, c_prev, c, h, h_prev, hold, np.int64(B * H), np.int32(H),
                              np.int32(1)))

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



def _rows_of_flags(hold) -> bool:
    """Whether ``hold`` (S, B, 1) bool, or None, has one byte per row in each step."""
    return hold is None or (hold.dtype == np.bool_ and hold.strides[1] == 1)


class _RowGemm:
    """``out_r (R, N) = a_r (R, K) @ w (K, N) + beta out_r`` as one cuBLAS call for any step
    r: the row blocks a_r and out_r (C-contiguous rows of (.., R, K) and (.., R, N) buffers)
    are given by address, ``w`` is fixed. Row-major arrays are column-major transposes, so
    cuBLAS computes out_r^T (N x R) = op(w)^T (N x K) a_r^T (K x R): m = N, n = R, k = K."""

    def __init__(self, func, op_w, ld_w, w_ptr, N, R, K, ld_a, ld_out, beta, dtype, keep):
        self.func, self.op_w, self.ld_w, self.w_ptr = func, op_w, ld_w, w_ptr
        self.N, self.R, self.K, self.ld_a, self.ld_out = N, R, K, ld_a, ld_out
        self.scalars = np.array([1.0, beta], dtype=dtype)      # alpha, beta in host memory
        self.keep = keep                                         # w stays alive meanwhile

    @classmethod
    def make(cls, w, rows: int, a, out, beta: float):
        """The call for ``w`` (K, N), or None where a layout does not fit one: a and out
        must be C-contiguous (.., rows, K) / (.., rows, N) of w's dtype, w have a unit
        stride."""
        from cupy_backends.cuda.libs import cublas
        K, N = w.shape
        if not (a.flags.c_contiguous and out.flags.c_contiguous and a.dtype == out.dtype
                == w.dtype and a.shape[-2:] == (rows, K) and out.shape[-2:] == (rows, N)
                and w.dtype in (np.float32, np.float64)):
            return None
        row, col = (stride // w.itemsize for stride in w.strides)
        if col == 1 and row >= max(1, N):          # row-major w: column-major w^T, op N
            op_w, ld_w = cublas.CUBLAS_OP_N, row
        elif row == 1 and col >= max(1, K):        # column-major w: transpose it, op T
            op_w, ld_w = cublas.CUBLAS_OP_T, col
        else:
            return None
        func = cublas.sgemm if w.dtype == np.float32 else cublas.dgemm
        return cls(func, op_w, ld_w, w.data.ptr, N, rows, K, K, N, beta, w.dtype, w)

    @contextmanager
    def session(self):
        """A function ``gemm(a_address, out_address)``, with the handle's pointer mode set
        to host for the ``with`` block and restored after it."""
        from cupy_backends.cuda.libs import cublas
        handle = cupy.cuda.device.get_cublas_handle()
        mode = cublas.getPointerMode(handle)
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        func, op_w, op_n, ld_w, w_ptr = (self.func, self.op_w, cublas.CUBLAS_OP_N, self.ld_w,
                                         self.w_ptr)
        N, R, K, ld_a, ld_out = self.N, self.R, self.K, self.ld_a, self.ld_out
        alpha = self.scalars.ctypes.data
        beta = alpha + self.scalars.itemsize

        def gemm(a_ptr: int, out_ptr: int) -> None:
            func(handle, op_w, op_n, N, R, K, alpha, w_ptr, ld_w, a_ptr, ld_a, beta, out_ptr,
                 ld_out)
        try:
            yield gemm
        finally:
            cublas.setPointerMode(handle, mode)
