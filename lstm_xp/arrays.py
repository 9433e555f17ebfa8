"""Moving arrays between host and device, and checking what users hand us.

Every public entry point takes its arrays through :func:`as_input`, which accepts NumPy
arrays (moved to the layer's device), arrays already on that device, arrays of other
libraries that offer ``__dlpack__`` or ``__array__`` (torch CPU tensors, JAX arrays:
converted once, on the host), and plain Python numbers/lists, and rejects everything else
with an error that names the argument, what was expected and what was given.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

_CHECK_FINITE = [True]


@contextmanager
def finite_checks(enabled: bool):
    """Turn the NaN/Inf checks of inputs on or off inside a ``with`` block.

    Each check costs one pass over the input and, on a GPU, one host synchronisation per
    call; benchmarks and tight inference loops may switch them off:
    ``with lstm_xp.finite_checks(False): ...``
    """
    before = _CHECK_FINITE[0]
    _CHECK_FINITE[0] = bool(enabled)
    try:
        yield
    finally:
        _CHECK_FINITE[0] = before


def check_finite(backend, named: dict) -> None:
    """ValueError naming the first array in ``named`` (name -> array or None) with NaN/Inf.

    All arrays are tested on the device and their verdicts fetched in one transfer.
    """
    items = [(name, a) for name, a in named.items() if a is not None]
    if not items or not _CHECK_FINITE[0]:
        return
    xp = backend.xp
    verdicts = backend.to_numpy(xp.stack([xp.all(xp.isfinite(a)) for _, a in items]))
    for (name, _), ok in zip(items, verdicts):
        if not ok:
            raise ValueError(f"{name} contains NaN or Inf")


def to_numpy(a) -> np.ndarray:
    """Any NumPy or CuPy array (or Python number/list) as a NumPy array on the host."""
    if isinstance(a, np.ndarray):
        return a
    if array_library(a) == "cupy":
        return a.get()
    return np.asarray(a)


def host_array(a):
    """``a`` as a NumPy array if it is one or can be read as one (CuPy's ``.get()``,
    ``__dlpack__``, ``__array__``; a torch tensor's autograd record is dropped), else None."""
    if isinstance(a, np.ndarray):
        return a
    if array_library(a) == "cupy":
        return a.get()
    detach = getattr(a, "detach", None)
    if callable(detach) and array_library(a) == "torch":
        a = detach()
    if hasattr(a, "__dlpack__"):
        try:
            return np.from_dlpack(a)
        except Exception:            # e.g. memory on a device NumPy cannot read: try below
            pass
    if hasattr(a, "__array__"):
        try:
            return np.asarray(a)
        except Exception:
            return None
    return None


def array_library(a) -> str:
    """The top-level module an array comes from: "numpy", "cupy", "torch", ..."""
    return type(a).__module__.split(".")[0]


def as_input(backend, a, name: str, dtype, ndims=None, copy: bool = False, owner=None):
    """``a`` as an array of ``backend`` with dtype ``dtype``, after checking it.

    Args:
        backend: the layer's backend.
        a: a NumPy array, an array of ``backend``, or a Python number/nested list.
        name: the argument's name, used in error messages.
        dtype: the layer's ``xp`` dtype; floating arrays must already have it (no silent
            precision change); Python numbers/lists are converted to it. None: any of
            float32 and float64, kept (Python numbers/lists become float64).
        ndims: allowed numbers of dimensions (tuple), or None for any.
        copy: return a copy even where ``a`` could be used as it is.
        owner: what ``dtype`` belongs to, for messages (default: the layer); e.g. "pred".

    Raises:
        TypeError: wrong array library or device, non-floating or mismatched dtype.
        ValueError: wrong number of dimensions.
    """
    want = None if dtype is None else backend.dtype_name(dtype)
    if isinstance(a, (list, tuple, int, float)) and not isinstance(a, bool):
        a = np.asarray(python_numbers(a, name), dtype=want or "float64")
    if backend.owns(a):
        got = backend.dtype_name(a.dtype)
    else:
        # a CuPy array on a CPU layer is refused rather than copied behind the user's back
        convertible = not isinstance(a, (str, bytes)) and array_library(a) != "cupy"
        host = host_array(a) if convertible else None
        if host is None:
            hint = (" (move it with lstm_xp.to_numpy, or move the layer with .to())"
                    if array_library(a) == "cupy" else "")
            raise TypeError(f"{name} must be an array (NumPy, on the layer's device "
                            f"({backend.name!r}), or with __dlpack__ or __array__); got "
                            f"{type(a).__module__}.{type(a).__name__}{hint}")
        a = host
        got = a.dtype.name
    if want is None:                  # a layer without a dtype: float32 or float64, kept
        if got not in ("float32", "float64"):
            raise TypeError(f"{name} has dtype {got} but must be float32 or float64; convert "
                            f"it with .astype('float32')")
        dtype = backend.dtype(got)
    elif not got.startswith("float"):
        whose = f"{owner}'s dtype" if owner else "the layer's dtype"
        raise TypeError(f"{name} has dtype {got} but must be floating point ({want}, {whose}); "
                        f"convert it with .astype('{want}')")
    elif got != want:
        if owner:
            raise TypeError(f"{name} has dtype {got} but {owner} has dtype {want}; convert it "
                            f"with .astype('{want}')")
        raise TypeError(f"{name} has dtype {got} but the layer computes in {want}; convert it "
                        f"with .astype('{want}') or build the layer with dtype='{got}'")
    if ndims is not None and len(a.shape) not in ndims:
        allowed = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {allowed} dimensions, got shape {tuple(a.shape)}")
    return backend.asarray(a, dtype=dtype, copy=True if copy else None)


def rows_contiguous(backend, a):
    """``a`` itself if each row (last axis) is contiguous and no stride is negative, else a
    C-contiguous copy: what the per-step primitives need of dy (the CUDA cell reads a row as
    one run of memory from a row pointer)."""
    strides = getattr(a, "strides", None)        # None: an array library without strides
    if strides is None or (all(s >= 0 for s in strides)
                           and (a.shape[-1] <= 1 or strides[-1] == a.dtype.itemsize)):
        return a
    out = backend.empty(tuple(a.shape), a.dtype)
    out[...] = a
    return out


def c_contiguous(backend, a):
    """``a`` itself if it is C-contiguous (or its library has no layouts), else a C-contiguous
    copy: BLAS and NumPy's reductions may add in another order on other layouts, and results
    must not depend on the caller's strides."""
    flags = getattr(a, "flags", None)
    if flags is None or flags.c_contiguous:
        return a
    out = backend.empty(tuple(a.shape), a.dtype)
    out[...] = a
    return out


def python_numbers(a, name: str) -> np.ndarray:
    """A Python number or (nested) list/tuple of numbers as a NumPy array, or an error naming
    ``name``: ValueError for ragged nesting, TypeError for strings, complex numbers or other
    objects inside."""
    try:
        host = np.asarray(a)
    except (ValueError, TypeError):     # NumPy's "inhomogeneous shape" for ragged nesting
        raise ValueError(f"{name} must be a rectangular array; the nested lists given have "
                         f"rows of different lengths") from None
    if host.dtype.kind not in "biuf":
        what = {"c": "complex numbers", "U": "strings", "S": "bytes"}.get(host.dtype.kind,
                                                                          "non-numbers")
        raise TypeError(f"{name} must hold real numbers, got a {type(a).__name__} of {what}")
    return host


def check_shape(name: str, a, expected: tuple, meaning: str = "") -> None:
    """Raise ValueError unless ``a.shape == expected``; ``meaning`` spells out the axes."""
    if tuple(a.shape) != tuple(expected):
        axes = f" {meaning}" if meaning else ""
        raise ValueError(f"{name} must have shape {tuple(expected)}{axes}, "
                         f"got {tuple(a.shape)}")


# sizes past this cannot be allocated anyway, and BLAS indexes with 32-bit integers
MAX_SIZE = 2**31 - 1


def positive_int(name: str, value) -> int:
    """``value`` as an int, or ValueError unless it is an integer in [1, MAX_SIZE]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {shown(value)}")
    if value > MAX_SIZE:
        raise ValueError(f"{name} must be at most 2**31 - 1, got {shown(value)}")
    return int(value)


def finite_number(name: str, value) -> float:
    """``value`` as a float, or ValueError unless it is a real number that is finite as a
    float (a Python int too large for a float, NaN and Inf are refused)."""
    try:
        ok = (isinstance(value, (int, float, np.integer, np.floating))
              and not isinstance(value, bool) and math.isfinite(value))
    except OverflowError:                       # an int beyond float's range
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number, got {shown(value)}")
    return float(value)


def shown(value) -> str:
    """``repr(value)`` for messages, shortened if it is huge (an int of 400 digits); an
    array of one or more dimensions by its shape and dtype."""
    if len(getattr(value, "shape", ())) > 0 and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def probability(name: str, value) -> float:
    """``value`` as a float, or ValueError unless it is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {shown(value)}")
    return float(value)


def flag(name: str, value) -> bool:
    """``value`` as a bool, or TypeError unless it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)
