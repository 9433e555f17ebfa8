"""Stand-in for ``cupy.cuda``: the device, streams, memory pointers and runtime queries."""

from _gpu_emulator.device import CudaEvent as Event  # noqa: F401
from _gpu_emulator.device import (Device, Stream, get_current_stream,  # noqa: F401
                                  get_device_id, get_elapsed_time)
from _gpu_emulator.memory import MemoryPointer  # noqa: F401

from . import compiler, device, memory, runtime, stream  # noqa: F401


def is_available() -> bool:
    return True
