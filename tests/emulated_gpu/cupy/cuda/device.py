"""Stand-in for ``cupy.cuda.device``."""

from _gpu_emulator.device import Device, get_cublas_handle, get_device_id  # noqa: F401
