"""CUDA source -> a C++ shared library with one launcher per kernel (stands in for NVRTC).

The source is compiled by g++ as C++, with ``cuda_shim.h`` force-included, followed by a
generated file that, for each kernel name (a C++ name expression such as
``lstm_cell_forward<float>``, as CuPy's ``name_expressions``), defines two ``extern "C"``
functions: ``emu_params_<i>`` (the parameter types, from the compiler: ``launch.h``'s
``emu::describe``) and ``emu_launch_<i>`` (runs a grid: ``emu::launch``).

Libraries are cached on disk by a hash of everything that goes into them (source, options,
names, the two headers), in ``$TMPDIR/cupy-emulator-<uid>``, and loaded once per process.

Multiply-adds. NVRTC contracts ``a*b + c`` into one fused multiply-add (one rounding) unless
told ``--fmad=false``; g++ on x86-64 emits no FMA unless asked. By default the emulator
compiles with contraction off (two roundings, as NumPy computes); with ``CUPY_EMULATOR_FMA=1``
(``pytest --emulated-gpu --emulated-fma``) it contracts wherever the kernel's options let
NVRTC contract (``-ffp-contract=fast``, with ``-mfma`` on x86-64). The two modes bracket
what a GPU does: the compilers need not pick the same multiply-adds to fuse.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SHIM, _LAUNCH = _HERE / "cuda_shim.h", _HERE / "launch.h"
_CXX = os.environ.get("CXX", "g++")
_LOADED: dict = {}      # hash -> CompiledModule, this process


class CompileException(Exception):
    """The source did not compile (stands in for ``cupy.cuda.compiler.CompileException``)."""

    def __init__(self, msg, source, name, options, backend="nvrtc"):
        super().__init__(msg)
        self.source, self.name, self.options, self.backend = source, name, options, backend


@dataclass(frozen=True)
class CompiledKernel:
    """One kernel of a compiled library: its name, parameter type codes and launcher."""
    name: str
    params: tuple
    launcher: ctypes._CFuncPtr


def _cxx_options(options) -> list[str]:
    """NVRTC options that mean something for C++: the standard, macros, include paths.
    The rest (architecture, fast math, line info, ...) concern GPU code and are ignored."""
    std, flags = "-std=c++17", []          # CuPy 14 compiles with C++17 unless told otherwise
    for opt in options:
        if opt.startswith(("--std=", "-std=")):
            std = "-std=" + opt.split("=", 1)[1]
        elif opt.startswith(("-D", "-I")):
            flags.append(opt)
        elif opt.startswith(("--define-macro=", "--include-path=")):
            flags.append(("-D" if opt.startswith("--define") else "-I") + opt.split("=", 1)[1])
    return [std, *flags]


def _nvrtc_contracts(options) -> bool:
    """Whether NVRTC, given ``options``, fuses multiply-adds: yes unless ``--fmad=false``
    (``-fmad=false``) comes after any ``--fmad=true`` or ``--use_fast_math``."""
    contracts = True
    for opt in options:
        name, _, value = opt.lstrip("-").partition("=")
        if name == "fmad":
            contracts = value != "false"
        elif name == "use_fast_math":
            contracts = True
    return contracts


def _contraction_flags(options) -> list[str]:
    """g++ flags for the multiply-adds NVRTC would fuse under ``options``, in this mode."""
    if os.environ.get("CUPY_EMULATOR_FMA") == "1" and _nvrtc_contracts(options):
        x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
        return ["-ffp-contract=fast"] + (["-mfma"] if x86 else [])
    return ["-ffp-contract=off"]


def _cache_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"cupy-emulator-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path


def _launchers(names) -> str:
    lines = ['#include "kernel.cu"', f'#include "{_LAUNCH}"']
    for i, name in enumerate(names):
        lines += [f'extern "C" const char* emu_params_{i}() {{ return emu::describe(&{name}); }}',
                  f'extern "C" void emu_launch_{i}(void** a, const unsigned* d, int r) '
                  f'{{ emu::launch(&{name}, a, d, r); }}']
    return "\n".join(lines) + "\n"


def _build(code: str, flags: list[str], names, target: Path, options) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as build:
        (Path(build) / "kernel.cu").write_text(code)
        (Path(build) / "launchers.cpp").write_text(_launchers(names))
        out = Path(build) / "module.so"
        cmd = [_CXX, *flags, "-O2", "-shared", "-fPIC", "-include", str(_SHIM), "-o", str(out),
               str(Path(build) / "launchers.cpp")]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            why = done.stderr
            if "poisoned" in why:
                why = ("the source uses a CUDA feature the CPU emulator does not support (it runs "
                       "a block's threads one after another, so barriers, __shared__ memory, "
                       "__constant__ memory, atomics and warp functions have no faithful "
                       "meaning):\n" + why)
            raise CompileException(why, code, ", ".join(names), tuple(options), "nvrtc")
        os.replace(out, target)


@dataclass(frozen=True)
class CompiledModule:
    """A loaded library: its kernels by name expression."""
    lib: ctypes.CDLL
    kernels: dict

    def exports(self, symbol: str) -> bool:
        """Whether ``symbol`` is an unmangled (extern "C") function of the source -- what
        CuPy needs to find a kernel by its plain name when no name_expressions were given."""
        return hasattr(self.lib, symbol)


def _load(path: Path, names) -> CompiledModule:
    lib = ctypes.CDLL(str(path))
    kernels = {}
    for i, name in enumerate(names):
        describe = getattr(lib, f"emu_params_{i}")
        describe.restype = ctypes.c_char_p
        launcher = getattr(lib, f"emu_launch_{i}")
        launcher.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint),
                             ctypes.c_int]
        launcher.restype = None
        params = tuple(p for p in describe().decode().split(",") if p)
        kernels[name] = CompiledKernel(name, params, launcher)
    return CompiledModule(lib, kernels)


def compile_module(code: str, options, names) -> CompiledModule:
    """The kernels ``names`` (C++ expressions) of CUDA source ``code``, compiled once."""
    names, flags = tuple(names), _cxx_options(options) + _contraction_flags(options)
    recipe = "\0".join([_SHIM.read_text(), _LAUNCH.read_text(), code, *flags, *names, _CXX])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:24]
    if key not in _LOADED:
        target = _cache_dir() / f"{key}.so"
        if not target.exists():
            _build(code, flags, names, target, options)
        _LOADED[key] = _load(target, names)
    return _LOADED[key]
