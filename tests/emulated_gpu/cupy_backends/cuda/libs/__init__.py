"""Stand-in for ``cupy_backends.cuda.libs``: only ``cublas``."""
