"""Stand-in for ``cupy.cuda.compiler``: the error a failed compilation raises."""

from _gpu_emulator.compiler import CompileException  # noqa: F401
