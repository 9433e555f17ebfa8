"""How to install an optional part of lstm-xp, said right for where the user is.

lstm-xp is installed from its source tree, not from a package index, so ``pip install
'lstm-xp[cuda12]'`` would not find it. From a checkout (the working directory holds lstm-xp's
``pyproject.toml``) the hint is ``pip install ".[cuda12]"``; anywhere else it names the
packages that extra brings. ``EXTRAS`` mirrors ``[project.optional-dependencies]`` in
pyproject.toml (a test keeps the two equal).
"""

from __future__ import annotations

from pathlib import Path

EXTRAS = {
    "cuda12": ("cupy-cuda12x[ctk]>=14.2",),
    "cuda13": ("cupy-cuda13x[ctk]>=14.2",),
    "train": ("tqdm>=4.60", "matplotlib>=3.7"),
    "onnx": ("onnx>=1.16",),
    "mpi": ("mpi4py>=4", "mpich>=4"),
    "gpu-emulation": ("cupy-cuda12x==14.2.*", "nvidia-cuda-nvrtc-cu12>=12.0,<13",
                      "nvidia-cuda-runtime-cu12>=12.0,<13"),
    "jit": ("numba>=0.61",),
}


def in_checkout(directory=None) -> bool:
    """Whether ``directory`` (default: the working directory) is an lstm-xp source tree."""
    project = Path(directory or Path.cwd()) / "pyproject.toml"
    try:
        return 'name = "lstm-xp"' in project.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def install_command(extra: str, directory=None) -> str:
    """The pip command that installs ``extra`` ("cuda12", "cuda13", "train") from here."""
    if in_checkout(directory):
        return f'pip install ".[{extra}]"'
    return "pip install " + " ".join(f'"{req}"' for req in EXTRAS[extra])
