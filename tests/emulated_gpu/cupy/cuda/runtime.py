"""Stand-in for ``cupy.cuda.runtime``: the questions code asks about the device."""

from _gpu_emulator import device as _device, events as _events
from _gpu_emulator.device import CUDARuntimeError  # noqa: F401


def getDeviceCount() -> int:
    return _device.DEVICE_COUNT


def getDevice() -> int:
    return _device.get_device_id()


def setDevice(device) -> None:
    _device.Device(device).use()


def getDeviceProperties(device) -> dict:
    _device.check_device(device)
    return dict(_device.PROPERTIES)


def runtimeGetVersion() -> int:
    return _device.RUNTIME_VERSION


def driverGetVersion() -> int:
    return _device.DRIVER_VERSION


def deviceSynchronize() -> None:
    _events.emit("sync", "device")
