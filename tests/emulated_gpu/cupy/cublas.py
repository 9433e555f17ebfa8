"""Stand-in for ``cupy.cublas``: CuPy's own ``cupy/cublas.py``, from the installed wheel,
executed here so that its imports (``cupy._core``, ``cupy_backends.cuda.libs.cublas``,
``cupy.cuda.device``, ``cupy.linalg._util``) resolve to the emulator's stand-ins. Only what
``gemm`` needs is backed by the reference BLAS; other routines fail when called.
"""

from _gpu_emulator.wheel import real_file as _real_file

_SOURCE = _real_file("cupy/cublas.py")        # ImportError, saying why, without the wheel
exec(compile(_SOURCE.read_text(), str(_SOURCE), "exec"), globals())
