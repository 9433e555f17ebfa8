"""A backend on ``array_api_strict`` on a non-default device, to prove the backend seam.

The strict namespace has only the array API standard: no ufunc ``out=``, no NumPy
scalars, no implicit conversion to NumPy, and arrays on "device1" cannot be mixed with
arrays on the CPU device. Model code that slips a ``np.`` call or a host array into the
math fails here, in CI, instead of on a user's GPU.
"""

import numpy as np

from backends import Backend


class StrictBackend(Backend):
    def __init__(self):
        import array_api_strict as xp
        super().__init__("strict", xp, device=xp.Device("device1"))

    def to_numpy(self, a):
        return np.asarray(a.to_device(self.xp.Device("CPU_DEVICE")))
