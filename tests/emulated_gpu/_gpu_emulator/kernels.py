"""``cupy.RawKernel`` and ``cupy.RawModule``: CUDA kernels compiled for the CPU, launched
with CuPy's argument marshalling and checks CuPy leaves to the GPU (or to luck).

Marshalling, as CuPy 14 (``_pointer`` in ``cupy/cuda/function.pyx`` and ``CScalar`` /
``numpy_dtype_from_pyscalar`` in ``cupy/_core/_scalar.pyx``, read in CuPy's repository;
the wheel has them compiled, and tests/test_emulator_drift.py checks the scalar rules
against the installed wheel's own ``cupy._core._scalar.CScalar``):

- a ``cupy.ndarray`` goes as its data pointer; views' strides are ignored (RawKernel's
  docstring: "passing matrix.T is treated as if you passed matrix");
- ``None`` goes as a null pointer; an integer given for a pointer parameter goes as that
  address (8 bytes, as CuPy passes a Python int), and must lie inside a live allocation,
  aligned to the pointee's size (its dtype cannot be checked);
- a NumPy scalar goes by value with its own dtype; a Python ``bool`` as numpy.bool_
  (1 byte), an ``int`` as numpy.int64 (numpy.uint64 from 2**63 up), a ``float`` as
  numpy.float64, a ``complex`` as numpy.complex128; other types: TypeError;
- a NumPy array of size one goes by value, a larger one is a TypeError (the emulator
  refuses both: a NumPy array here is almost always a forgotten ``cupy.asarray``);
- ``grid`` and ``block`` must be tuples (``Function.__call__(self, tuple grid, tuple
  block, ...)``), padded with 1s to three dimensions; CuPy clamps each to at least 1.

Checked here before each launch, each failure naming the kernel and argument index: the
argument count; a pointer parameter gets a device array whose dtype is the pointee's
(``float*`` <- float32, ``double*`` <- float64, ``bool*``/``unsigned char*`` <- bool or
uint8, ``void*`` <- any) or None; a by-value parameter gets a value of exactly its width
and kind after CuPy's conversion (``int`` <- numpy.int32, ``long long`` <- numpy.int64 or
a Python int, ``bool`` <- numpy.bool_ or a Python bool); a NumPy array anywhere is an
error (host memory); grid and block are within CUDA's limits (CUDA's, not CuPy's: a 0 is
refused here, not clamped); no dynamic shared memory. Parameter types come from the
compiler (``launch.h``), not from the source text.

After each launch, the guards of every live allocation are checked (``memory``), and the
launch is run a second time, with blocks and threads in reverse order, from the same
starting memory: different bytes mean the kernel depends on the order its threads run,
which on a GPU is a race. Cost: every launch runs twice, and every allocation it was
handed is copied three times (before, after the first run, restore), so a launch costs
about twice its CPU time plus O(bytes of the arrays passed) -- for a per-step kernel
handed the whole (T, B, 4H) gate buffer, that is O(T) per step.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from . import events
from .array import ndarray
from .compiler import compile_module
from .device import MAX_BLOCK, MAX_GRID, MAX_THREADS_PER_BLOCK, Stream
from .memory import GUARD, check_guards, find_allocation

# CUPY_EMULATOR_SKIP_WORK=1: launches and cuBLAS calls are logged and return at once (no
# checks, no work), so that what remains of a loop's time is its host-side Python: how
# scripts/step_overhead.py measures the per-step host cost. Results are garbage then.
SKIP_WORK = os.environ.get("CUPY_EMULATOR_SKIP_WORK") == "1"

_C_NAMES = {"f2": "half", "f4": "float", "f8": "double", "i1": "signed char", "i2": "short",
            "i4": "int", "i8": "long long", "u1": "unsigned char", "u2": "unsigned short",
            "u4": "unsigned int", "u8": "unsigned long long", "b1": "bool", "void": "void"}
_SAME_BYTES = {"b1": {np.dtype(np.bool_), np.dtype(np.uint8)},
               "u1": {np.dtype(np.bool_), np.dtype(np.uint8)}}


def _c_type(code: str) -> str:
    """A parameter's type code (launch.h) as C: "*const f8" -> "const double*"."""
    if code.startswith("*"):
        base = code[1:]
        const = base.startswith("const ")
        return ("const " if const else "") + _C_NAMES.get(base.removeprefix("const "), "?") + "*"
    return _C_NAMES.get(code, f"an unsupported type of {code[1:]} bytes")


def cupy_scalar(arg, where: str):
    """The by-value argument CuPy 14 would pass for ``arg`` (a NumPy scalar)."""
    if isinstance(arg, ndarray):
        raise TypeError(f"{where}: a device array is passed as a pointer, not a value")
    if isinstance(arg, np.ndarray):
        raise TypeError(f"{where}: a NumPy array (host memory) cannot be a kernel argument")
    if type(arg) is int:
        return np.uint64(arg) if arg >= 2 ** 63 else np.int64(arg)
    if type(arg) in (bool, float, complex):
        return {bool: np.bool_, float: np.float64, complex: np.complex128}[type(arg)](arg)
    if isinstance(arg, np.generic):
        return arg
    raise TypeError(f"{where}: unsupported argument type {type(arg).__name__} (CuPy: "
                    f"'Unsupported type')")


def _marshal(name: str, index: int, code: str, arg):
    """(holder kept alive during the launch, address of the value) for one argument."""
    where = f"kernel {name}: argument {index} ({_c_type(code)})"
    if code.startswith("?"):
        raise TypeError(f"{where}: the emulator supports scalar and pointer parameters only")
    if not code.startswith("*"):
        value = cupy_scalar(arg, where)
        want = np.dtype(bool) if code == "b1" else np.dtype(code)
        if value.dtype != want:
            raise TypeError(f"{where} takes {want.name}, got {type(arg).__name__} "
                            f"{arg!r} (passed as {value.dtype.name}): pass numpy.{want.name}(...)")
        holder = np.array(value)
        return holder, holder.ctypes.data
    if arg is None:
        holder = ctypes.c_void_p(0)
    elif isinstance(arg, ndarray):
        pointee = code[1:].removeprefix("const ")
        if pointee != "void":
            want = np.dtype(bool) if pointee == "b1" else np.dtype(pointee)
            if arg.dtype not in _SAME_BYTES.get(pointee, {want}):
                raise TypeError(f"{where} needs a {want.name} device array, got {arg.dtype.name}")
        holder = ctypes.c_void_p(arg.data.ptr)
    elif isinstance(arg, np.ndarray):
        raise TypeError(f"{where}: a NumPy array is host memory; move it with cupy.asarray")
    elif isinstance(arg, (int, np.integer)) and not isinstance(arg, (bool, np.bool_)):
        address = int(arg)       # a raw device address (CuPy passes an int as 8 bytes)
        pointee = code[1:].removeprefix("const ")
        size = 1 if pointee in ("void", "b1") else np.dtype(pointee).itemsize
        if find_allocation(address, size) is None:
            raise TypeError(f"{where}: address {address:#x} is not inside a live device "
                            f"allocation")
        if address % size:
            raise TypeError(f"{where}: address {address:#x} is not aligned to {size} bytes")
        holder = ctypes.c_void_p(address)
    else:
        raise TypeError(f"{where} is a pointer: pass a device array, got {type(arg).__name__}")
    return holder, ctypes.addressof(holder)


def _dims(name: str, what: str, dims, limits) -> tuple:
    if not isinstance(dims, tuple):
        raise TypeError(f"kernel {name}: {what} must be a tuple (as CuPy requires), got "
                        f"{type(dims).__name__}")
    if not 1 <= len(dims) <= 3 or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise ValueError(f"kernel {name}: {what} must be 1 to 3 integers, got {dims}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    for axis, (d, limit) in enumerate(zip(dims, limits)):
        if not 1 <= d <= limit:
            clamp = " (CuPy would silently launch it as 1)" if d < 1 else ""
            raise ValueError(f"kernel {name}: {what} {dims} is outside CUDA's limits: "
                             f"dimension {'xyz'[axis]} must be 1..{limit}{clamp}")
    return dims


class RawKernel:
    """A kernel of CUDA source, by name (stands in for ``cupy.RawKernel``); compiled at
    the first call (or ``compile()``), as CuPy does."""

    def __init__(self, code, name, options=()):
        if not isinstance(options, tuple):
            raise TypeError(f"options must be a tuple, got {type(options).__name__}")
        self.code, self.name, self.options = code, name, options
        self._expressions = None      # set for kernels of a RawModule with name_expressions
        self._compiled = None

    @property
    def kernel(self):
        """The compiled kernel (its parameter type codes and launcher)."""
        if self._compiled is None:
            self.compile()
        return self._compiled

    def compile(self, log_stream=None) -> None:
        module = compile_module(self.code, self.options, self._expressions or (self.name,))
        if self._expressions is None and not module.exports(self.name):
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: kernel "
                               f"{self.name!r} has C++ linkage; declare it extern \"C\" or "
                               f"get it from a RawModule with name_expressions")
        self._compiled = module.kernels[self.name]

    def __call__(self, grid, block, args, **kwargs):
        if SKIP_WORK:
            events.emit("kernel", self.name)
            return
        shared_mem, stream = kwargs.pop("shared_mem", 0), kwargs.pop("stream", None)
        if kwargs:
            raise TypeError(f"kernel {self.name}: unexpected keyword arguments {sorted(kwargs)}")
        if shared_mem:
            raise ValueError(f"kernel {self.name}: dynamic shared memory is not supported by "
                             f"the emulator")
        if stream is not None and not isinstance(stream, Stream):
            raise TypeError(f"kernel {self.name}: stream must be a cupy.cuda.Stream")
        grid = _dims(self.name, "grid", grid, MAX_GRID)
        block = _dims(self.name, "block", block, MAX_BLOCK)
        if block[0] * block[1] * block[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(f"kernel {self.name}: block {block} has more than "
                             f"{MAX_THREADS_PER_BLOCK} threads")
        kernel = self.kernel
        if not isinstance(args, (tuple, list)) or len(args) != len(kernel.params):
            got = len(args) if isinstance(args, (tuple, list)) else type(args).__name__
            raise TypeError(f"kernel {self.name} takes {len(kernel.params)} arguments "
                            f"({', '.join(map(_c_type, kernel.params))}), got {got}")
        marshalled = [_marshal(self.name, i, code, arg)
                      for i, (code, arg) in enumerate(zip(kernel.params, args))]
        argv = (ctypes.c_void_p * max(len(args), 1))(*[address for _, address in marshalled])
        dims = (ctypes.c_uint * 6)(*grid, *block)
        touched = {id(a._alloc): a._alloc for a in args if isinstance(a, ndarray)}
        for code, arg in zip(kernel.params, args):       # raw addresses: their allocations
            if code.startswith("*") and isinstance(arg, (int, np.integer)) and \
                    not isinstance(arg, (bool, np.bool_)):
                alloc = find_allocation(int(arg))
                touched[id(alloc)] = alloc
        touched = list(touched.values())
        events.emit("kernel", self.name)
        _run_twice(self.name, kernel.launcher, argv, dims, touched)


def _run_twice(name: str, launcher, argv, dims, touched) -> None:
    """Run a launch in order, then again in reverse order from the same memory; raise
    AssertionError if a guard changed or the two runs left different bytes."""
    before = [alloc.buffer.copy() for alloc in touched]
    launcher(argv, dims, 0)
    check_guards(f"kernel {name}")
    first = [alloc.buffer.copy() for alloc in touched]
    for alloc, saved in zip(touched, before):
        alloc.buffer[...] = saved
    launcher(argv, dims, 1)
    check_guards(f"kernel {name} (run in reverse order)")
    for alloc, want in zip(touched, first):
        if not np.array_equal(alloc.buffer, want):
            offset = int(np.flatnonzero(alloc.buffer != want)[0]) - GUARD
            alloc.buffer[...] = want
            raise AssertionError(
                f"kernel {name} depends on the order its threads run in: run with blocks and "
                f"threads reversed, it left other bytes in {alloc.label} (first at byte "
                f"{offset} of its data); on a GPU, where threads run concurrently, that is a "
                f"race")


class RawModule:
    """CUDA source holding several kernels (stands in for ``cupy.RawModule``); compiled at
    the first ``get_function``, once for all ``name_expressions``."""

    def __init__(self, *, code=None, options=(), name_expressions=None):
        if code is None:
            raise TypeError("the emulator compiles CUDA source only: pass code= (path= to a "
                            "cubin or PTX file is not supported)")
        if not isinstance(options, tuple):
            raise TypeError(f"options must be a tuple, got {type(options).__name__}")
        self.code, self.options = code, options
        self.name_expressions = None if name_expressions is None else tuple(name_expressions)

    def get_function(self, name) -> RawKernel:
        kernel = RawKernel(self.code, name, self.options)
        if self.name_expressions is not None and name in self.name_expressions:
            kernel._expressions = self.name_expressions
        kernel.compile()
        return kernel
