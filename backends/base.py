"""The backend object: an array module plus the few hot primitives of an LSTM.

Model code (``lstm_xp``) is written once against ``backend.xp`` using only names that
NumPy 2, CuPy 14 and the Python array API standard share, and calls the methods below
for array creation, host/device transfer and the per-step hot path. The methods here
are the *generic* versions, plain ``xp`` code; a backend may override any of them with a
faster one (in-place ufuncs on NumPy, fused kernels on CuPy), and the tests compare
every override with the generic version.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


class BackendUnavailableError(RuntimeError):
    """A device was asked for that this machine cannot provide (the message says why)."""


def _sigmoid(xp, a):
    """Logistic function in a form that cannot overflow: sigma(a) = (1 + tanh(a/2)) / 2."""
    return 0.5 * xp.tanh(0.5 * a) + 0.5


class Backend:
    """Array module ``xp`` on one device, with generic (plain ``xp``) hot primitives.

    Attributes:
        name: the device name users pass (``"cpu"``, ``"gpu"``, ...).
        xp: the array namespace (``numpy``, ``cupy``, an array API namespace).
        device: the ``device=`` argument given to ``xp`` creation functions, or None.
    """

    def __init__(self, name: str, xp, device=None):
        self.name = name
        self.xp = xp
        self.device = device

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # ----------------------------------------------------------- dtypes and arrays
    def dtype(self, dtype):
        """The ``xp`` dtype for ``"float32"``/``"float64"`` (or a NumPy/xp dtype of that name)."""
        name = dtype
        if dtype is not None and not isinstance(dtype, str):
            try:
                name = np.dtype(dtype).name
            except TypeError:
                name = self.dtype_name(dtype)
        if name not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        return getattr(self.xp, name)

    def dtype_name(self, dtype) -> str:
        """The plain name (``"float32"``) of an ``xp`` dtype, or ``str(dtype)`` if unnamed."""
        for name in ("float16", "float32", "float64", "int32", "int64", "bool"):
            if dtype == getattr(self.xp, name, None):
                return name
        return str(dtype)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype, **self._on_device())

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype, **self._on_device())

    def arange(self, n: int, dtype=None):
        return self.xp.arange(n, dtype=dtype, **self._on_device())

    def asarray(self, a, dtype=None, copy=None):
        """``a`` (host array, nested list or an array of this backend) as an array here."""
        return self.xp.asarray(a, dtype=dtype, copy=copy, **self._on_device())

    def to_numpy(self, a) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of an array of this backend."""
        return np.asarray(a)

    def owns(self, a) -> bool:
        """Whether ``a`` is an array of this backend, on its device."""
        return (type(a).__module__.split(".")[0] == self.xp.__name__.split(".")[0]
                and (self.device is None or getattr(a, "device", None) == self.device))

    def synchronize(self) -> None:
        """Wait until queued device work is done (a no-op on the CPU)."""

    def describe(self) -> dict:
        """Library versions (and device name) for run records."""
        return {self.xp.__name__: getattr(self.xp, "__version__", "unknown")}

    def _on_device(self) -> dict:
        return {} if self.device is None else {"device": self.device}

    # ----------------------------------------------------------- hot primitives
    def matmul_into(self, a, b, out) -> None:
        """out[...] = a @ b for 2-D operands (transposed views allowed)."""
        out[...] = self.xp.matmul(a, b)

    def matmul_acc(self, a, b, out) -> None:
        """out[...] += a @ b for 2-D operands (transposed views allowed)."""
        out[...] += self.xp.matmul(a, b)

    def keep_where(self, dst, src, hold) -> None:
        """dst[...] = where(hold, src, dst): rows of ``dst`` flagged in ``hold`` take ``src``.

        Exact (a select, no arithmetic). Shapes: dst, src (B, H); hold (B, 1) bool.
        """
        dst[...] = self.xp.where(hold, src, dst)

    def lstm_cell_forward(self, gates, c_prev, c, h) -> None:
        """One LSTM step once the gate pre-activations are summed.

        Shapes: gates (B, 4H), c_prev, c, h (B, H); rows of ``gates`` in PyTorch's order.

            i = sigma(a_i)   f = sigma(a_f)   g = tanh(a_g)   o = sigma(a_o)
            c = f * c_prev + i * g
            h = o * tanh(c)

        In place: ``gates`` holds the pre-activations [a_i a_f a_g a_o] on entry and the
        activations [i f g o] on return (what backward needs); ``c`` and ``h`` are written.
        """
        xp = self.xp
        H = c_prev.shape[-1]
        i = _sigmoid(xp, gates[:, 0:H])
        f = _sigmoid(xp, gates[:, H:2 * H])
        g = xp.tanh(gates[:, 2 * H:3 * H])
        o = _sigmoid(xp, gates[:, 3 * H:4 * H])
        c[...] = f * c_prev + i * g
        h[...] = o * xp.tanh(c)
        gates[:, 0:H] = i
        gates[:, H:2 * H] = f
        gates[:, 2 * H:3 * H] = g
        gates[:, 3 * H:4 * H] = o

    def lstm_cell_backward(self, gates, c_prev, c, dh, dc) -> None:
        """Gradients of one LSTM step, the reverse of :meth:`lstm_cell_forward`.

        Shapes: gates (B, 4H); c_prev, c, dh, dc (B, H). ``dh`` is dL/dh_t (all paths);
        ``dc`` is dL/dc_t through c_{t+1} on entry and dL/dc_{t-1} on return.

            dc_t = dc + dh * o * (1 - tanh(c)^2)
            da_i = dc_t * g * i (1 - i)           da_f = dc_t * c_prev * f (1 - f)
            da_g = dc_t * i * (1 - g^2)           da_o = dh * tanh(c) * o (1 - o)
            dc_prev = dc_t * f

        In place: ``gates`` holds the activations [i f g o] on entry and the pre-activation
        gradients [da_i da_f da_g da_o] on return.
        """
        xp = self.xp
        H = c_prev.shape[-1]
        i, f = gates[:, 0:H], gates[:, H:2 * H]
        g, o = gates[:, 2 * H:3 * H], gates[:, 3 * H:4 * H]
        tanh_c = xp.tanh(c)
        dc_t = dc + dh * o * (1.0 - tanh_c * tanh_c)
        da_i = dc_t * g * i * (1.0 - i)
        da_f = dc_t * c_prev * f * (1.0 - f)
        da_g = dc_t * i * (1.0 - g * g)
        da_o = dh * tanh_c * o * (1.0 - o)
        dc[...] = dc_t * f
        gates[:, 0:H] = da_i
        gates[:, H:2 * H] = da_f
        gates[:, 2 * H:3 * H] = da_g
        gates[:, 3 * H:4 * H] = da_o

