"""The log of device work: what a profiler (nsys) would show of a run, as plain events.

Stands in for nothing in CuPy; it is the emulator's window for tests. Every emulated
operation that on real CuPy queues device work, waits for it, or copies between host and
device calls :func:`emit` once, in issue order:

    kernel       a RawKernel / RawModule function launch (name: the name expression)
    gemm         one cuBLAS GEMM ("sgemm", "dgemm"), or a cupy.matmul ("matmul")
    elementwise  any other kernel CuPy would launch: ufuncs, operators, copies, fills,
                 __setitem__, astype, where, copyto, concatenation, take, random draws...
    reduction    sum, mean, max, min, all, any, ...
    sync         a stream or device synchronize, or the implicit one of a device->host copy
    to_host      a device->host copy (asnumpy, .get(), .item(), .tolist())
    to_device    a host->device copy (asarray / array of host data)

Views (slicing, reshape of contiguous data, .T) and ``empty`` queue nothing and log nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

KINDS = frozenset({"kernel", "gemm", "elementwise", "reduction", "sync", "to_host",
                   "to_device"})


@dataclass(frozen=True)
class Event:
    """One piece of device work: its kind (one of KINDS) and the operation's name."""
    kind: str
    name: str


@dataclass
class Log:
    """The events issued inside one :func:`record` block, in issue order."""
    events: list = field(default_factory=list)

    def count(self, kind: str, name: str | None = None) -> int:
        """How many events of ``kind`` (and of ``name``, if given) were issued."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {sorted(KINDS)}")
        return sum(1 for e in self.events if e.kind == kind and (name is None or e.name == name))


_ACTIVE: list[Log] = []


@contextmanager
def record():
    """Collect the device work issued inside the ``with`` block into a :class:`Log`.

    Records may nest: every active log receives every event (an inner log sees only
    its own block's events, an outer one sees those too).
    """
    log = Log()
    _ACTIVE.append(log)
    try:
        yield log
    finally:
        _ACTIVE.remove(log)


def emit(kind: str, name: str) -> None:
    """Log one event in every active record."""
    assert kind in KINDS, kind
    if _ACTIVE:
        event = Event(kind, name)
        for log in _ACTIVE:
            log.events.append(event)
