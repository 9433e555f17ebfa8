"""Long streams in chunks: carry (h, c) across consecutive chunks (truncated BPTT).

    carry = CarriedState()
    for x_chunk, target in chunks:                  # consecutive pieces of B parallel streams
        y, state = lstm.forward(x_chunk, carry.state)
        carry.keep(state)                           # detached: backward stops at the chunk
        ...loss...; lstm.backward(dy); opt.step()   # memory: one chunk's activations
    carry.reset([3])                                # stream 3 starts a new sequence

Gradients are truncated at chunk boundaries (the ``dh0``/``dc0`` that ``backward``
returns for a chunk are simply not propagated further), while the forward state flows on,
so a stream of any length trains in the memory of one chunk.
"""

from __future__ import annotations

import numpy as np

from backends import backend_of


class CarriedState:
    """The (h, c) handed from one chunk to the next, per stream in the batch.

    ``state`` is None (zeros) until :meth:`keep` is called, and after :meth:`reset`.
    """

    def __init__(self):
        self.state = None

    def keep(self, state) -> None:
        """Remember ``state = (h_n, c_n)`` (copied: later changes to them do not leak in)."""
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"state must be the pair (h_n, c_n) that forward returned, "
                            f"got {type(state).__name__}")
        h, c = state
        backend = backend_of(h)
        self.state = (backend.asarray(h, copy=True), backend.asarray(c, copy=True))

    def reset(self, streams=None) -> None:
        """Start over: all streams (``streams=None``) or only the listed batch indices."""
        if streams is None or self.state is None:
            self.state = None
            return
        h, c = self.state
        if len(h.shape) != 3:
            raise ValueError("reset(streams) needs a batched state (L*D, B, H); this one is "
                             "unbatched: call reset() to start over")
        B = h.shape[1]
        if isinstance(streams, (int, np.integer)):
            streams = [streams]
        for b in streams:
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 0 <= b < B:
                raise ValueError(f"streams must hold batch indices in [0, {B}), got {b!r}")
            h[:, int(b), :] = 0.0
            c[:, int(b), :] = 0.0
