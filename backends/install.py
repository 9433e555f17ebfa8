"""How to install an optional part of lstm-xp, said right for where the user is.

From a checkout (the working directory holds lstm-xp's ``pyproject.toml``) the hint is
``pip install ".[onnx]"``; anywhere else it names the installed package with the extra,
``pip install "lstm-xp[onnx]"``, which adds the extra's packages to the lstm-xp already
installed (pip finds it installed and fetches only what the extra brings).
"""

from __future__ import annotations

from pathlib import Path

def in_checkout(directory=None) -> bool:
    """Whether ``directory`` (default: the working directory) is an lstm-xp source tree."""
    project = Path(directory or Path.cwd()) / "pyproject.toml"
    try:
        return 'name = "lstm-xp"' in project.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def install_command(extra: str, directory=None) -> str:
    """The pip command that installs ``extra`` ("cuda12", "cuda13", "train", "onnx", "mpi",
    "jit") from here."""
    if in_checkout(directory):
        return f'pip install ".[{extra}]"'
    return f'pip install "lstm-xp[{extra}]"'
