"""Files of the real, installed CuPy wheel: the emulator runs some of CuPy's own Python
(``cupy/cublas.py``) over its stand-ins, so that what the backend calls is CuPy's code."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

_DISTRIBUTIONS = ("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x", "cupy")


def real_file(relative: str) -> Path:
    """The path of ``relative`` (e.g. ``"cupy/cublas.py"``) in the installed CuPy wheel."""
    for name in _DISTRIBUTIONS:
        try:
            path = Path(importlib.metadata.distribution(name).locate_file(relative))
        except importlib.metadata.PackageNotFoundError:
            continue
        if path.is_file():
            return path
    raise ImportError(f"the emulated cupy runs CuPy's own {relative} from the installed CuPy "
                      f"wheel, and none of {', '.join(_DISTRIBUTIONS)} is installed (or has "
                      f"that file): pip install cupy-cuda12x")
