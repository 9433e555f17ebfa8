"""Device random numbers (stands in for ``cupy.random.Generator`` and ``default_rng``).

Draws are device work (one elementwise kernel each, no host transfer), as on CuPy. The
numbers come from NumPy's PCG64, not CuPy's XORWOW: the same seed gives other numbers
than on a GPU, with the same distribution.
"""

from __future__ import annotations

import numpy as np

from . import events
from .array import from_host_data, ndarray


class Generator:
    """A generator of device random arrays over ``bit_generator`` (here a NumPy one)."""

    def __init__(self, bit_generator):
        self._rng = np.random.Generator(bit_generator)

    def random(self, size=None, dtype=np.float64, out=None):
        """Uniform floats in [0, 1) of ``dtype`` (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"random supports float32 and float64, got {dtype}")
        values = np.asarray(self._rng.random(size, dtype=dtype))
        events.emit("elementwise", "random")
        if out is None:
            return from_host_data(values)
        if not isinstance(out, ndarray):
            raise TypeError(f"out must be a device array, got {type(out).__name__}")
        out._a[...] = values
        return out


def default_rng(seed=None) -> Generator:
    return Generator(np.random.PCG64(seed))
