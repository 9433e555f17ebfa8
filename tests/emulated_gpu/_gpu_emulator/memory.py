"""Device memory: allocations fenced by guard bytes, and the registry of live ones.

Stands in for CuPy's memory pool (``cupy.cuda.memory``). An allocation is one NumPy byte
buffer: GUARD bytes of PATTERN, the data, GUARD bytes of PATTERN. PATTERN (all bits set)
is a NaN in every IEEE floating format, so a kernel that reads past an array poisons its
results, and one that writes past it changes a guard, which :func:`check_guards` reports.
Fresh data (``cupy.empty``) holds the same pattern: memory nobody wrote reads as NaN,
where a GPU would give whatever was there before.

Pointers are real host addresses (the data of element 0), so compiled kernels and the
reference BLAS use them directly, as a GPU uses device addresses.
"""

from __future__ import annotations

import itertools
import weakref

import numpy as np

GUARD = 64
PATTERN = 0xFF
_GUARD_BYTES = bytes([PATTERN]) * GUARD
_SERIALS = itertools.count(1)
_LIVE: weakref.WeakSet = weakref.WeakSet()
_BYTES = {"live": 0, "peak": 0}       # data bytes held now, and the most since the pool's reset


class Allocation:
    """``nbytes`` of device memory; leaves the registry when nothing refers to it."""

    __slots__ = ("buffer", "start", "nbytes", "label", "__weakref__")

    def __init__(self, nbytes: int, label: str):
        self.buffer = np.full(nbytes + 2 * GUARD, PATTERN, dtype=np.uint8)
        self.start = self.buffer.ctypes.data + GUARD
        self.nbytes = nbytes
        self.label = f"allocation #{next(_SERIALS)} ({label}, {nbytes} bytes)"
        _LIVE.add(self)
        _BYTES["live"] += nbytes
        _BYTES["peak"] = max(_BYTES["peak"], _BYTES["live"])

    def __del__(self):
        _BYTES["live"] -= self.nbytes

    def __repr__(self) -> str:
        return f"<{self.label} at {self.start:#x}>"

    def contains(self, ptr: int, nbytes: int = 0) -> bool:
        """Whether the byte range [ptr, ptr + nbytes) lies inside the data."""
        return self.start <= ptr and ptr + nbytes <= self.start + self.nbytes

    def guard_damage(self) -> str | None:
        """Which guard ("before" or "after" the data) was overwritten, or None."""
        if self.buffer[:GUARD].tobytes() != _GUARD_BYTES:
            return "before"
        if self.buffer[GUARD + self.nbytes:].tobytes() != _GUARD_BYTES:
            return "after"
        return None

    def restore_guards(self) -> None:
        self.buffer[:GUARD] = PATTERN
        self.buffer[GUARD + self.nbytes:] = PATTERN


class MemoryPool:
    """Stands in for CuPy's default memory pool: as if every freed block were cached until
    ``free_all_blocks``, ``total_bytes`` is the most held at once since then."""

    def free_all_blocks(self) -> None:
        _BYTES["peak"] = _BYTES["live"]

    def used_bytes(self) -> int:
        return _BYTES["live"]

    def total_bytes(self) -> int:
        return _BYTES["peak"]


_POOL = MemoryPool()


def get_default_memory_pool() -> MemoryPool:
    return _POOL


def live_allocations() -> list[Allocation]:
    """Every allocation still referenced (by an array, a view or a memory pointer)."""
    return list(_LIVE)


def find_allocation(ptr: int, nbytes: int = 0) -> Allocation | None:
    """The live allocation whose data holds all of [ptr, ptr + nbytes), or None."""
    for alloc in _LIVE:
        if alloc.contains(ptr, nbytes):
            return alloc
    return None


def check_guards(after: str) -> None:
    """AssertionError naming ``after`` (the kernel or BLAS call just run) and the
    allocation if any live allocation's guard bytes changed; the guards are then restored
    so that one defect is reported once."""
    for alloc in list(_LIVE):
        where = alloc.guard_damage()
        if where is not None:
            alloc.restore_guards()
            raise AssertionError(f"{after} wrote out of bounds: the guard bytes {where} the "
                                 f"data of {alloc.label} changed")


class MemoryPointer:
    """A device address and the allocation it points into (stands in for
    ``cupy.cuda.MemoryPointer``; ``a.data.ptr`` is how code hands addresses to CUDA)."""

    __slots__ = ("mem", "ptr")
    device_id = 0

    def __init__(self, mem: Allocation, ptr: int):
        self.mem, self.ptr = mem, ptr

    def __int__(self) -> int:
        return self.ptr
