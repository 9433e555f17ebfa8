"""The ``cupy`` namespace's functions: creation, transfers, ufuncs, reductions, views.

Most are generated: a NumPy function forwarded over device data (``array.call``), with the
signature CuPy 14 gives it (written out in the tables below, checked against the installed
CuPy by tests/test_emulator_drift.py) so that an argument CuPy would refuse is refused
here too. The rest, whose behaviour is the point (transfers, fills, copyto), are spelled out.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from . import events
from .array import apply_ufunc, call, empty as _empty, from_host_data, ndarray, to_host, unwrap

# name -> CuPy 14's parameters; the NumPy function of the same name does the work
_VIEWS_OR_COPIES = {           # free where NumPy returns a view, else one elementwise copy
    "reshape": "a, newshape, order='C', *, copy=None",
    "permute_dims": "a, axes=None",
    "transpose": "a, axes=None",
    "expand_dims": "a, axis",
    "squeeze": "a, axis=None",
    "broadcast_to": "array, shape",
    "ravel": "a, order='C'",
    "ascontiguousarray": "a, dtype=None",
    "asfortranarray": "a, dtype=None",
}
_ELEMENTWISE = {
    "astype": "x, dtype, /, *, copy=True",
    "where": "condition, x=None, y=None",
    "stack": "tup, axis=0, out=None, *, dtype=None, casting='same_kind'",
    "concat": "tup, axis=0, out=None, *, dtype=None, casting='same_kind'",
    "concatenate": "tup, axis=0, out=None, *, dtype=None, casting='same_kind'",
    "take": "a, indices, axis=None, out=None",
    "take_along_axis": "a, indices, axis",
    "clip": "a, a_min, a_max, out=None",
}
_REDUCTIONS = {
    "sum": "a, axis=None, dtype=None, out=None, keepdims=False",
    "mean": "a, axis=None, dtype=None, out=None, keepdims=False",
    "prod": "a, axis=None, dtype=None, out=None, keepdims=False",
    "max": "a, axis=None, out=None, keepdims=False",
    "min": "a, axis=None, out=None, keepdims=False",
    "all": "a, axis=None, out=None, keepdims=False",
    "any": "a, axis=None, out=None, keepdims=False",
    "count_nonzero": "a, axis=None",
}
_UFUNCS = ("abs absolute negative positive add subtract multiply divide true_divide "
           "floor_divide power remainder maximum minimum fmax fmin exp expm1 log log1p sqrt "
           "square tanh sin cos sign isfinite isnan isinf logical_not logical_and logical_or "
           "equal not_equal less less_equal greater greater_equal").split()


def _signature(params: str) -> inspect.Signature:
    scope: dict = {}
    exec(f"def f({params}): pass", {}, scope)
    return inspect.signature(scope["f"])


def _forwarder(kind: str, name: str, params: str):
    sig, np_func = _signature(params), getattr(np, name)

    def function(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        out = bound.arguments.pop("out", None)     # by keyword: call() looks for it there
        return call(kind, name, np_func, *bound.args, **bound.kwargs,
                    **({} if out is None else {"out": out}))

    function.__name__ = function.__qualname__ = name
    function.__signature__ = sig
    function.__doc__ = f"cupy.{name}({params}): numpy.{name} on device data ({kind})."
    return function


class ufunc:
    """A NumPy ufunc over device arrays and scalars (stands in for ``cupy.ufunc``): one
    elementwise kernel per call."""

    def __init__(self, np_ufunc):
        self._np = np_ufunc
        self.name = self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.__doc__ = f"cupy.{self.name}: numpy.{self.name} on device data (elementwise)."

    def __repr__(self) -> str:
        return f"<ufunc '{self.name}' (emulated)>"

    def __call__(self, *args, out=None, dtype=None, casting="same_kind"):
        if len(args) != self.nin:
            raise TypeError(f"{self.name} takes {self.nin} operands, got {len(args)}")
        result = apply_ufunc(self._np, args, out=out, dtype=dtype, casting=casting)
        if result is NotImplemented:
            raise TypeError(f"cupy.{self.name}: unsupported operand types "
                            f"{[type(a).__name__ for a in args]}")
        return result


def _generated() -> dict:
    made = {name: _forwarder("elementwise", name, p) for name, p in _VIEWS_OR_COPIES.items()}
    made.update({name: _forwarder("elementwise", name, p) for name, p in _ELEMENTWISE.items()})
    made.update({name: _forwarder("reduction", name, p) for name, p in _REDUCTIONS.items()})
    made.update({name: ufunc(getattr(np, name)) for name in _UFUNCS})
    return made


# ------------------------------------------------------------------ by hand
def matmul(x1, x2, /, *, out=None, dtype=None):
    """One GEMM (cuBLAS on CuPy) computed with NumPy; logged as ("gemm", "matmul"). float32
    inputs are rounded to TF32 first where CuPy's compute type for float32 says TF32."""
    from cupy._core import _routines_linalg as linalg
    from .blas import tf32

    def product(a, b, **kw):
        if a.dtype == b.dtype == np.float32 and \
                linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32:
            a, b = tf32(a), tf32(b)
        return np.matmul(a, b, **kw)
    return call("gemm", "matmul", product, x1, x2, out=out, dtype=dtype)


def _index_reduction(np_func):
    """argmax/argmin: CuPy's parameters (a ``dtype`` for the indices) differ from NumPy's."""
    def function(a, axis=None, dtype=None, out=None, keepdims=False):
        def compute(x, out=None):
            index = np_func(x, axis=axis, keepdims=keepdims)
            index = np.asarray(index if dtype is None else index.astype(dtype))
            if out is None:
                return index
            out[...] = index
            return out
        return call("reduction", np_func.__name__, compute, a, out=out)

    function.__name__ = function.__qualname__ = np_func.__name__
    function.__doc__ = f"cupy.{np_func.__name__}: the index of the extreme entry (reduction)."
    return function


argmax, argmin = _index_reduction(np.argmax), _index_reduction(np.argmin)


def empty(shape, dtype=float, order="C"):
    return _empty(shape, dtype, order)


def _filled(shape, dtype, order, value):
    out = _empty(shape, dtype, order)
    out._a[...] = value
    events.emit("elementwise", "fill")
    return out


def zeros(shape, dtype=float, order="C"):
    return _filled(shape, dtype, order, 0)


def ones(shape, dtype=float, order="C"):
    return _filled(shape, dtype, order, 1)


def full(shape, fill_value, dtype=None, order="C"):
    dtype = np.full((), fill_value, dtype).dtype
    return _filled(shape, dtype, order, fill_value)


def _like(a, dtype, order, shape):
    if not isinstance(a, ndarray):
        raise TypeError(f"expected a device array, got {type(a).__module__}.{type(a).__name__}")
    if order in ("K", "A"):
        order = "F" if a._a.flags.f_contiguous and not a._a.flags.c_contiguous else "C"
    return (a.shape if shape is None else shape), (a.dtype if dtype is None else dtype), order


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    return _empty(*_like(prototype, dtype, order, shape))


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return _filled(*_like(a, dtype, order, shape), 0)


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return _filled(*_like(a, dtype, order, shape), 1)


def arange(start, stop=None, step=1, dtype=None):
    """Computed on the device (one elementwise kernel), not copied from the host."""
    events.emit("elementwise", "arange")
    return from_host_data(np.arange(start, stop, step, dtype=dtype))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """A device array as it is (or converted on the device); host data copied to the
    device (a "to_device" event)."""
    if isinstance(a, ndarray):
        if copy:
            return array(a, dtype=dtype, copy=True, order=order or "K")
        return call("elementwise", "astype", np.asarray, a, dtype=dtype, order=order)
    if copy is False:
        raise ValueError("asarray(copy=False) of host data: moving it to the device is a copy")
    host = np.asarray(a, dtype=dtype, order=order)     # device arrays inside refuse (TypeError)
    events.emit("to_device", "asarray")
    return from_host_data(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A copy of a device array (one elementwise copy) or of host data (a "to_device")."""
    if not isinstance(obj, ndarray):
        host = np.array(obj, dtype=dtype, order=order, ndmin=ndmin)
        events.emit("to_device", "array")
        return from_host_data(host)
    if not copy:
        return asarray(obj, dtype=dtype, order=None if order == "K" else order)
    events.emit("elementwise", "copy")
    return from_host_data(np.array(obj._a, dtype=dtype, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A NumPy copy of a device array (a sync and a "to_host"); host data as it is."""
    host = to_host(a, "asnumpy", order) if isinstance(a, ndarray) else np.asarray(a, order=order)
    if out is None:
        return host
    out[...] = host
    return out


def copyto(dst, src, casting="same_kind", where=None):
    """dst[...] = src where ``where`` (one elementwise kernel)."""
    if not isinstance(dst, ndarray):
        raise TypeError(f"copyto: dst must be a device array, got {type(dst).__name__}")
    if not isinstance(src, (ndarray, bool, int, float, complex, np.generic)):
        raise TypeError(f"copyto: src must be a device array or a scalar, got "
                        f"{type(src).__module__}.{type(src).__name__}")
    host = unwrap((src, where), "cupy.copyto", [])
    np.copyto(dst._a, host[0], casting=casting, where=True if where is None else host[1])
    events.emit("elementwise", "copyto")


def get_array_module(*args):
    """``cupy`` if any argument is a device array, else ``numpy``."""
    if any(isinstance(a, ndarray) for a in args):
        return importlib.import_module("cupy")
    return np


# everything above that the cupy namespace offers (generated names would shadow builtins
# such as sum and max here, so they live in this dict rather than in the module)
NAMESPACE = {**_generated(), **{f.__name__: f for f in (
    matmul, argmax, argmin, empty, zeros, ones, full, empty_like, zeros_like, ones_like,
    arange, asarray, array, asnumpy, copyto, get_array_module)}, "ufunc": ufunc}


def scatter_add(a, slices, value):
    """a[slices] += value, repeated indices adding up (``cupyx.scatter_add``; one kernel)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"scatter_add: a must be a device array, got {type(a).__name__}")
    host_slices, host_value = unwrap((slices, value), "cupyx.scatter_add", [])
    np.add.at(a._a, host_slices, host_value)
    events.emit("elementwise", "scatter_add")
