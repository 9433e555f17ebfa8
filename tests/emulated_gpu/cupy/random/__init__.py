"""Stand-in for ``cupy.random``: device generators (other numbers than CuPy's per seed)."""

from _gpu_emulator.random import Generator, default_rng  # noqa: F401
