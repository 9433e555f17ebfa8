"""Stand-in for ``cupy.linalg``: only there so that CuPy's cupy/cublas.py can import
``cupy.linalg._util``; no linear algebra is emulated."""
