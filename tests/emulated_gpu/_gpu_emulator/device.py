"""The one emulated device, its streams, and the runtime's answers about it.

Stands in for ``cupy.cuda.Device``, ``cupy.cuda.Stream`` and the queries of
``cupy.cuda.runtime``. Work runs when it is issued, so a synchronize has nothing to wait
for; it is logged (a "sync" event) because on a GPU it stalls the host.
"""

from __future__ import annotations

import itertools
import time

from . import events

DEVICE_COUNT = 1
RUNTIME_VERSION = 12000        # what runtimeGetVersion() reports: CUDA 12.0
DRIVER_VERSION = 12000
MAX_BLOCK = (1024, 1024, 64)   # CUDA's limits, checked at every launch (kernels.py)
MAX_THREADS_PER_BLOCK = 1024
MAX_GRID = (2 ** 31 - 1, 65535, 65535)
PROPERTIES = {
    "name": b"Emulated CUDA device (CPU; tests/emulated_gpu)",
    "major": 9, "minor": 0, "multiProcessorCount": 1, "warpSize": 32,
    "totalGlobalMem": 16 << 30, "maxThreadsPerBlock": MAX_THREADS_PER_BLOCK,
    "maxThreadsDim": MAX_BLOCK, "maxGridSize": MAX_GRID,
}
_HANDLES = itertools.count(1)


class CUDARuntimeError(RuntimeError):
    """Stands in for cupy_backends.cuda.api.runtime.CUDARuntimeError."""

    def __init__(self, status):
        self.status = status
        super().__init__(f"cudaError {status}: {_ERRORS.get(status, 'unknown error')}")


_ERRORS = {101: "cudaErrorInvalidDevice: invalid device ordinal",
           400: "cudaErrorInvalidResourceHandle: invalid resource handle"}


def check_device(device_id: int) -> int:
    if not 0 <= device_id < DEVICE_COUNT:
        raise CUDARuntimeError(101)
    return device_id


class Device:
    """A CUDA device by number (stands in for ``cupy.cuda.Device``)."""

    _current = 0

    def __init__(self, device=None):
        self._id = Device._current if device is None else int(device)

    id = property(lambda self: self._id)

    @property
    def cublas_handle(self) -> int:
        return _CUBLAS_HANDLES.setdefault(check_device(self._id), next(_HANDLES))

    def use(self) -> None:
        Device._current = check_device(self._id)

    def synchronize(self) -> None:
        events.emit("sync", "device")

    def __repr__(self) -> str:
        return f"<CUDA Device {self._id}>"


_CUBLAS_HANDLES: dict[int, int] = {}


def get_device_id() -> int:
    return Device._current


def cublas_handles() -> set:
    """Every cuBLAS handle handed out so far (the reference BLAS refuses others)."""
    return set(_CUBLAS_HANDLES.values())


def get_cublas_handle() -> int:
    """The current device's cuBLAS handle (what cupy.cublas passes to every call)."""
    return Device().cublas_handle


class Stream:
    """A CUDA stream (stands in for ``cupy.cuda.Stream``); all work runs in issue order."""

    null: "Stream"

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0 if null else next(_HANDLES)

    def synchronize(self) -> None:
        events.emit("sync", "stream")

    def use(self) -> "Stream":
        _CURRENT_STREAM[0] = self
        return self


Stream.null = Stream(null=True)
_CURRENT_STREAM = [Stream.null]


def get_current_stream() -> Stream:
    return _CURRENT_STREAM[0]


class CudaEvent:
    """A CUDA event (stands in for ``cupy.cuda.Event``): ``record`` notes the host clock, as
    work here is done when issued; ``synchronize`` is logged as a sync."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._disable_timing = disable_timing
        self._time = None

    def record(self, stream=None) -> None:
        self._time = time.perf_counter()

    def synchronize(self) -> None:
        events.emit("sync", "event")

    @property
    def done(self) -> bool:
        return True


def get_elapsed_time(start: CudaEvent, end: CudaEvent) -> float:
    """Milliseconds between two recorded events (``cupy.cuda.get_elapsed_time``)."""
    for e in (start, end):
        if e._time is None or e._disable_timing:
            raise CUDARuntimeError(400)      # cudaErrorInvalidResourceHandle
    return (end._time - start._time) * 1e3
