"""Stand-in for ``cupy.cuda.stream``."""

from _gpu_emulator.device import Stream, get_current_stream  # noqa: F401
