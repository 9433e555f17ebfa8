"""The emulator's API for tests (no counterpart in CuPy).

    from cupy import _emulator
    with _emulator.record() as log:       # records may nest; each sees its block's events
        ...device work...
    log.events                             # [Event(kind, name), ...] in issue order
    log.count("kernel", "lstm_cell_forward<float>")
    _emulator.live_allocations()           # allocations still referenced

Event kinds (KINDS): kernel, gemm, elementwise, reduction, sync, to_host, to_device; what
each covers is in ``_gpu_emulator.events``.
"""

from _gpu_emulator.events import KINDS, Event, Log, record  # noqa: F401
from _gpu_emulator.memory import live_allocations  # noqa: F401
