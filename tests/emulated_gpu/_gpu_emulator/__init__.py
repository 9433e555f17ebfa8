"""An emulated CUDA device for the tests: CuPy's API over NumPy, CUDA kernels run as C++.

Put ``tests/emulated_gpu`` first on the import path (``PYTHONPATH=tests/emulated_gpu``) and
``import cupy`` gives the stand-in packages beside this one (``cupy``, ``cupyx``,
``cupy_backends``), which run the project's real CuPy backend and its real CUDA source on
the CPU: device arrays are NumPy arrays inside guarded allocations, ``cupy.RawModule``
compiles the ``.cu`` file with g++ and runs every block and thread of a launch one after
another, and ``cupy.cublas`` is CuPy's own ``cupy/cublas.py`` over a reference BLAS.

What a passing run is evidence of: the GPU path's *logic* -- argument marshalling (types,
widths, pointer versus value), indexing and launch grids, bounds (guard bytes around every
allocation, NaN-poisoned fresh memory), leading dimensions and transposes handed to cuBLAS,
the host/device protocol (no implicit transfers, no NumPy arrays mixed in), and how many
launches, GEMMs, syncs and transfers a piece of code issues (``cupy._emulator.record``).
What it is NOT evidence of: GPU numerics (the math runs in the CPU's libm and NumPy, so
results differ from a GPU's in the last bits), races under real concurrency (threads run
one at a time; a launch is re-run in reverse order to catch order dependence, which is
not the same as catching every race), memory-model or occupancy questions, or speed.

The modules here hold the implementation; the stand-in packages only re-export it under
CuPy's names:

    events    the launch/sync/transfer log (``cupy._emulator.record``)
    memory    allocations with guard bytes, the registry of live ones
    array     the device array (``cupy.ndarray``) and the generic NumPy forwarding
    functions the ``cupy`` namespace: creation, transfers, ufuncs, reductions, ...
    device    the one device, its streams and runtime queries
    compiler  CUDA source -> C++ shared library with a launcher per kernel (g++)
    kernels   ``cupy.RawKernel`` / ``cupy.RawModule``: argument checks and launches
    blas      a reference column-major BLAS over raw pointers (cuBLAS stand-in)
    wheel     finding files of the real, installed CuPy wheel
"""
