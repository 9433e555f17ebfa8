"""The device array (stands in for ``cupy.ndarray``) and the forwarding of calls to NumPy.

A device array is a NumPy view (``_a``) into an :class:`~.memory.Allocation` (``_alloc``).
An operation runs NumPy on those views and copies the result into a new allocation, so
every result is again a device array -- except where NumPy's result is a view of an
operand's memory (slicing, reshape of contiguous data, ``.T``): that stays a view and
costs nothing, as on CuPy. Each computed result logs one event (``events``).

Host/device protocol, as CuPy and stricter:

- no implicit conversion to the host: ``__array__`` (so ``np.asarray(a)``), ``float()``,
  ``int()``, ``bool()``, ``complex()``, ``operator.index()`` and iteration raise TypeError
  naming the explicit way. (CuPy converts 0-d and size-1 arrays silently, with a sync;
  the emulator refuses, so that hidden syncs show.)
- a NumPy array mixed with device arrays -- in an operator (either side), a ufunc, a
  function, an index or an assigned value -- raises TypeError, as CuPy's
  "Unsupported type numpy.ndarray" does.
- Python and NumPy scalars are fine operands, promoted as NumPy 2 does (NEP 50: Python
  scalars are weak), which CuPy 14 follows.
"""

from __future__ import annotations

import math

import numpy as np

from . import events
from .memory import GUARD, Allocation, MemoryPointer

_EXPLICIT = "use cupy.asnumpy(a) or a.get() for a NumPy copy, or a.item() for a Python scalar"
_SCALARS = (bool, int, float, complex, np.generic)


def _mixing_error(where: str) -> TypeError:
    return TypeError(f"{where}: a NumPy array (host memory) cannot be mixed with device "
                     f"arrays; move it with cupy.asarray(x) first (CuPy raises too)")


def _layout(a: np.ndarray) -> str:
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def empty(shape, dtype, order: str = "C") -> "ndarray":
    """A new device array whose data is uninitialised (the NaN pattern); logs nothing."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc":
        raise TypeError(f"CuPy has no device arrays of dtype {dtype}")
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
    alloc = Allocation(math.prod(shape) * dtype.itemsize, f"{dtype.name} {shape}")
    view = np.ndarray(shape, dtype, buffer=alloc.buffer, offset=GUARD, order=order)
    return ndarray._make(alloc, view)


def from_host_data(host: np.ndarray) -> "ndarray":
    """A new device array holding a copy of ``host`` (its layout kept); the caller logs."""
    out = empty(host.shape, host.dtype, _layout(host))
    out._a[...] = host
    return out


def to_host(a: "ndarray", name: str, order: str = "C") -> np.ndarray:
    """A NumPy copy of a device array: an implicit sync, then a device->host copy."""
    events.emit("sync", name)
    events.emit("to_host", name)
    return np.array(a._a, order=order, copy=True)


def unwrap(x, where: str, sources: list):
    """``x`` with each device array replaced by its NumPy view (recursing into lists,
    tuples and dicts; their allocations are appended to ``sources``); NumPy arrays refused."""
    if isinstance(x, ndarray):
        sources.append(x._alloc)
        return x._a
    if isinstance(x, np.ndarray):
        raise _mixing_error(where)
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v, where, sources) for v in x)
    if isinstance(x, dict):
        return {k: unwrap(v, where, sources) for k, v in x.items()}
    return x


def wrap(result, kind: str, name: str, sources: list):
    """NumPy's ``result`` as device arrays: a view of one of the ``sources`` allocations
    stays a free view; anything else is computed device work (one ``kind`` event)."""
    if isinstance(result, tuple):
        return tuple(wrap(r, kind, name, sources) for r in result)
    if isinstance(result, np.generic):          # reductions to one element: 0-d on the device
        result = np.asarray(result)
    if not isinstance(result, np.ndarray):
        return result
    address = result.__array_interface__["data"][0]
    for alloc in sources:
        if alloc.contains(address):
            return ndarray._make(alloc, result)
    events.emit(kind, name)
    return from_host_data(result)


def call(kind: str, name: str, func, /, *args, **kwargs):
    """``func`` (a NumPy function) on the data of the device arrays in ``args``/``kwargs``;
    the result as device arrays (``out=``, if a device array, is written and returned)."""
    sources: list = []
    result = func(*unwrap(args, f"cupy.{name}", sources),
                  **unwrap(kwargs, f"cupy.{name}", sources))
    out = kwargs.get("out")
    if isinstance(out, ndarray):
        events.emit(kind, name)
        return out
    return wrap(result, kind, name, sources)


_UNSUPPORTED = object()


def _operand(x, where: str):
    """A ufunc operand: a device array's view or a scalar; NumPy arrays refused; other
    types give _UNSUPPORTED (operators then return NotImplemented)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise _mixing_error(where)
    if isinstance(x, _SCALARS):
        return x
    return _UNSUPPORTED


def apply_ufunc(np_ufunc, args, out=None, **kwargs):
    """One elementwise kernel: ``np_ufunc`` over device arrays and scalars; a new device
    array, or ``out`` written in place. NotImplemented for operands of other types."""
    name = np_ufunc.__name__
    host = [_operand(x, f"cupy.{name}") for x in args]
    if any(h is _UNSUPPORTED for h in host):
        return NotImplemented
    if out is not None and not isinstance(out, ndarray):
        raise TypeError(f"cupy.{name}: out must be a device array, got {type(out).__name__}")
    result = np_ufunc(*host, out=None if out is None else out._a, **kwargs)
    events.emit("elementwise", name)
    return out if out is not None else from_host_data(np.asarray(result))


class Flags:
    """``a.flags``: the layout facts the code asks (stands in for cupy._core.flags.Flags)."""

    def __init__(self, a: np.ndarray, owndata: bool):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = owndata


class ndarray:
    """An array in emulated device memory (stands in for ``cupy.ndarray``)."""

    __slots__ = ("_a", "_alloc", "__weakref__")
    __module__ = "cupy"      # as CuPy's: code tells arrays' libraries apart by this name
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        new = empty(shape, dtype, order)
        self._a, self._alloc = new._a, new._alloc

    @classmethod
    def _make(cls, alloc: Allocation, view: np.ndarray) -> "ndarray":
        obj = object.__new__(cls)
        obj._alloc, obj._a = alloc, view
        return obj

    # ------------------------------------------------------------- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    _c_contiguous = property(lambda self: bool(self._a.flags.c_contiguous))   # cupy/cublas.py
    _f_contiguous = property(lambda self: bool(self._a.flags.f_contiguous))   # reads these

    @property
    def flags(self) -> Flags:
        return Flags(self._a, self._a.__array_interface__["data"][0] == self._alloc.start
                     and self._a.nbytes == self._alloc.nbytes)

    @property
    def data(self) -> MemoryPointer:
        """The device address of element 0 (a real host address here)."""
        return MemoryPointer(self._alloc, self._a.__array_interface__["data"][0])

    @property
    def device(self):
        from .device import Device
        return Device(0)

    @property
    def T(self) -> "ndarray":
        return ndarray._make(self._alloc, self._a.T)

    # ------------------------------------------------------- explicit transfers
    def get(self, stream=None, order="C", out=None, blocking=True) -> np.ndarray:
        host = to_host(self, "get", order)
        if out is None:
            return host
        out[...] = host
        return out

    def item(self):
        return to_host(self, "item").item()

    def tolist(self):
        return to_host(self, "tolist").tolist()

    # ------------------------------------------------- copies, views, reductions
    def copy(self, order="C") -> "ndarray":
        out = empty(self.shape, self.dtype, _layout(self._a) if order in "KA" else order)
        out._a[...] = self._a
        events.emit("elementwise", "copy")
        return out

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True) -> "ndarray":
        return call("elementwise", "astype", np.ndarray.astype, self, dtype, order=order,
                    casting="unsafe" if casting is None else casting, copy=copy)

    def reshape(self, *shape, order="C") -> "ndarray":
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return call("elementwise", "reshape", np.reshape, self, shape, order=order)

    def transpose(self, *axes) -> "ndarray":
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ndarray._make(self._alloc, self._a.transpose(*axes))

    def ravel(self, order="C") -> "ndarray":
        return call("elementwise", "ravel", np.ravel, self, order=order)

    def fill(self, value) -> None:
        self._a.fill(_scalar_value(value, "ndarray.fill"))
        events.emit("elementwise", "fill")

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return call("reduction", "sum", np.sum, self, axis=axis, dtype=dtype, out=out,
                    keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return call("reduction", "mean", np.mean, self, axis=axis, dtype=dtype, out=out,
                    keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return call("reduction", "max", np.max, self, axis=axis, out=out, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return call("reduction", "min", np.min, self, axis=axis, out=out, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return call("reduction", "all", np.all, self, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return call("reduction", "any", np.any, self, axis=axis, out=out, keepdims=keepdims)

    # ----------------------------------------------------------- indexing
    def __getitem__(self, key):
        sources = [self._alloc]
        hkey = unwrap(key, "indexing", sources)
        result = self._a[hkey]
        if isinstance(result, np.generic):   # integer indices down to one element: a 0-d view
            result = self._a[(hkey if isinstance(hkey, tuple) else (hkey,)) + (Ellipsis,)]
        parts = hkey if isinstance(hkey, tuple) else (hkey,)
        if any(isinstance(k, np.ndarray) and k.dtype == np.bool_ for k in parts):
            events.emit("sync", "boolean index")    # CuPy must learn the result's size first
        return wrap(result, "elementwise", "getitem", sources)

    def __setitem__(self, key, value) -> None:
        self._a[unwrap(key, "indexing", [])] = _scalar_value(value, "__setitem__")
        events.emit("elementwise", "setitem")

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    # --------------------------------------------- no implicit host conversion
    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"implicit conversion of a device array to a NumPy array is not "
                        f"allowed (a hidden device-to-host copy); {_EXPLICIT}")

    def _refuse(self, what: str):
        raise TypeError(f"{what} of a device array would be an implicit device-to-host copy "
                        f"and sync; {_EXPLICIT}")

    __float__ = lambda self: self._refuse("float()")          # noqa: E731
    __int__ = lambda self: self._refuse("int()")              # noqa: E731
    __complex__ = lambda self: self._refuse("complex()")      # noqa: E731
    __bool__ = lambda self: self._refuse("bool()")            # noqa: E731
    __index__ = lambda self: self._refuse("use as an index")  # noqa: E731
    __iter__ = lambda self: self._refuse("iteration")         # noqa: E731

    def __repr__(self) -> str:     # for debugging: reads device memory without logging
        return repr(self._a)

    def __copy__(self) -> "ndarray":
        return self.copy()

    def __deepcopy__(self, memo) -> "ndarray":
        return self.copy()

    # --------------------------------------- NumPy's dispatch protocols (as CuPy)
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method != "__call__":
            return NotImplemented
        if isinstance(out, tuple):
            (out,) = out
        return apply_ufunc(ufunc, inputs, out=out, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import functions
        ours = functions.NAMESPACE.get(func.__name__)
        return NotImplemented if ours is None else ours(*args, **kwargs)

    def __matmul__(self, other):
        from .functions import matmul         # the one emulated GEMM (compute types)
        return matmul(self, other)

    def __rmatmul__(self, other):
        from .functions import matmul
        return matmul(other, self)


def _scalar_value(value, where: str):
    """An assigned value: a device array's view or a scalar (NumPy arrays and lists refused)."""
    host = _operand(value, where)
    if host is _UNSUPPORTED:
        raise TypeError(f"{where}: cannot assign a {type(value).__name__} to a device array")
    return host


def _install_operators() -> None:
    """The arithmetic, comparison and unary operators, each one elementwise kernel."""
    def binary(np_ufunc):
        return (lambda self, other: apply_ufunc(np_ufunc, (self, other)),
                lambda self, other: apply_ufunc(np_ufunc, (other, self)),
                lambda self, other: apply_ufunc(np_ufunc, (self, other), out=self))

    for name, np_ufunc in {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                           "truediv": np.true_divide, "floordiv": np.floor_divide,
                           "mod": np.remainder, "pow": np.power, "and": np.bitwise_and,
                           "or": np.bitwise_or, "xor": np.bitwise_xor}.items():
        forward, reflected, inplace = binary(np_ufunc)
        setattr(ndarray, f"__{name}__", forward)
        setattr(ndarray, f"__r{name}__", reflected)
        setattr(ndarray, f"__i{name}__", inplace)
    for name, np_ufunc in {"eq": np.equal, "ne": np.not_equal, "lt": np.less,
                           "le": np.less_equal, "gt": np.greater,
                           "ge": np.greater_equal}.items():
        setattr(ndarray, f"__{name}__", binary(np_ufunc)[0])
    for name, np_ufunc in {"neg": np.negative, "pos": np.positive, "abs": np.absolute,
                           "invert": np.invert}.items():
        setattr(ndarray, f"__{name}__", lambda self, f=np_ufunc: apply_ufunc(f, (self,)))


_install_operators()
