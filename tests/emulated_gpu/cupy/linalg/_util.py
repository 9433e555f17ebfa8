"""Stand-in for ``cupy.linalg._util``, which CuPy's cupy/cublas.py imports: its helpers
serve routines the emulator does not back (batched_gesv, ...), so none is defined."""
