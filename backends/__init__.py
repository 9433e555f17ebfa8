"""Array backends, chosen by name at run time.

    >>> from backends import get_backend
    >>> cpu = get_backend("cpu")        # NumPy
    >>> gpu = get_backend("gpu")        # CuPy; a clear BackendUnavailableError if it cannot be
    >>> any_ = get_backend("auto")      # the GPU where one is usable, else the CPU

This package knows nothing about training; ``lstm_xp`` builds on it. CuPy is imported
only when a GPU is asked for.
"""

from __future__ import annotations

from typing import Callable

from .base import (FLOAT_DTYPES, Backend, BackendUnavailableError, check_seed, manual_seed,
                   parameter_generator)
from .install import install_command

__all__ = ["Backend", "BackendUnavailableError", "FLOAT_DTYPES", "DEVICES", "get_backend",
           "backend_of", "register_backend", "device_names", "install_command", "manual_seed",
           "pin_gpu", "check_seed", "parameter_generator"]

DEVICES = ("cpu", "gpu", "auto")     # what command lines offer; device_names() adds aliases


def _install_hint() -> str:
    return (f"install CuPy for your CUDA version: {install_command('cuda12')} (CUDA 12) "
            f"or {install_command('cuda13')} (CUDA 13)")


def _make_numpy() -> Backend:
    from .numpy_backend import NumpyBackend
    return NumpyBackend()


def _make_cupy() -> Backend:
    try:
        import cupy
    except ImportError as err:
        raise BackendUnavailableError(
            f"device 'gpu' needs CuPy, which is not installed ({err}); {_install_hint()}") from None
    except Exception as err:  # a broken install can fail with other errors
        raise BackendUnavailableError(
            f"device 'gpu': CuPy is installed but cannot be imported ({err}); "
            f"{_install_hint()}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken: CuPy raises its own types
        if "InsufficientDriver" in str(err):
            # the CUDA runtime's answer where no driver is loaded (a machine without a GPU)
            raise BackendUnavailableError(
                f"device 'gpu': no NVIDIA driver is installed here, so there is no usable GPU "
                f"(CuPy says: {str(err).split(':')[0]}); use device 'cpu', or run on a "
                "machine with an NVIDIA GPU and its driver") from None
        raise BackendUnavailableError(
            f"device 'gpu': CuPy is installed but CUDA cannot be used here ({err}); check the "
            "NVIDIA driver and that the CuPy wheel matches the CUDA version") from None
    if count == 0:
        raise BackendUnavailableError(
            "device 'gpu': CuPy is installed but no CUDA device is visible "
            "(check nvidia-smi and CUDA_VISIBLE_DEVICES)")
    try:
        from .cupy_backend import CupyBackend
        return CupyBackend()   # compiles the kernels and opens cuBLAS now, not mid-training
    except Exception as err:
        raise BackendUnavailableError(
            f"device 'gpu': a CUDA device is visible but the GPU path cannot start "
            f"({type(err).__name__}: {err}); CuPy 14 needs the CUDA libraries cuBLAS and "
            f"NVRTC, which its [ctk] extra installs: {_install_hint()}") from None


_FACTORIES: dict[str, Callable[[], Backend]] = {"cpu": _make_numpy, "gpu": _make_cupy}
_ALIASES = {"numpy": "cpu", "cuda": "gpu", "cupy": "gpu"}
_INSTANCES: dict[str, Backend] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make ``get_backend(name)`` build a backend with ``factory()`` (called once, cached)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    _FACTORIES[name.lower()] = factory
    _INSTANCES.pop(name.lower(), None)


def device_names() -> list[str]:
    """The names ``get_backend`` accepts (``"auto"`` included)."""
    return sorted(_FACTORIES) + ["auto"] + sorted(_ALIASES)


def get_backend(device: str | Backend = "cpu") -> Backend:
    """The backend for ``device``: ``"cpu"``, ``"gpu"``, ``"auto"`` or a :class:`Backend`.

    Raises:
        BackendUnavailableError: ``"gpu"`` where CuPy or a CUDA device is missing.
        ValueError: an unknown device name.
        TypeError: ``device`` neither a string nor a Backend.
    """
    if isinstance(device, Backend):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a name such as 'cpu' or 'gpu', or a Backend; "
                        f"got {type(device).__name__}")
    name = device.strip().lower()
    if name == "auto":
        try:
            return get_backend("gpu")
        except BackendUnavailableError:
            return get_backend("cpu")
    name = _ALIASES.get(name, name)
    if name not in _FACTORIES:
        raise ValueError(f"unknown device {device!r}; expected one of {device_names()}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


def pin_gpu(rank: int) -> int:
    """Make GPU ``rank`` mod (visible GPUs) CuPy's current device (data-parallel ranks
    sharing a machine each take their own); returns its index. Call before any GPU work."""
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        raise BackendUnavailableError(f"device 'gpu': cannot pick a GPU for rank {rank} "
                                      f"({err}); {_install_hint()}") from None
    if count == 0:
        raise BackendUnavailableError("device 'gpu': no CUDA device is visible")
    cupy.cuda.Device(rank % count).use()
    return rank % count


def backend_of(a) -> Backend:
    """The backend (among those in use) whose array ``a`` is; NumPy arrays give the CPU's.

    Raises:
        TypeError: ``a`` is not an array of any backend in use.
    """
    for backend in _INSTANCES.values():
        if backend.owns(a):
            return backend
    if type(a).__module__.split(".")[0] == "numpy":
        return get_backend("cpu")
    raise TypeError(f"expected an array of a backend in use ({sorted(_INSTANCES)}), "
                    f"got {type(a).__module__}.{type(a).__name__}")
