"""Stand-in for ``cupy.cuda.memory``."""

from _gpu_emulator.memory import MemoryPointer, MemoryPool  # noqa: F401
