"""The user's layouts of sequence arrays, for the recurrent layers (LSTM, RNN).

A recurrent layer computes time-major, (T, B, F). Its user may give (T, B, F), (B, T, F)
with ``batch_first``, or (T, F) unbatched; states are (L*D, B, F), or (L*D, F) unbatched.
The layer mixes this class in and has ``backend``, ``dtype``, ``batch_first``,
``num_layers`` and ``num_directions``.
"""

from __future__ import annotations

from .arrays import as_input, check_shape


class SequenceLayout:
    """Conversions between the user's layout and the time-major one, with shape checks
    that name the axes in the user's terms."""

    def _input_sequence(self, x):
        """(a private, C-contiguous, time-major (T, B, I) copy of ``x``, whether ``x`` was
        unbatched), after checking ``x``: its dtype, rank, features and that T, B >= 1.
        The copy keeps later changes to the caller's x from corrupting the gradients, and
        every GEMM sees a plain (T*B, I) matrix."""
        x = as_input(self.backend, x, "x", self.dtype, ndims=(2, 3))
        unbatched = len(x.shape) == 2
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have {self.input_size} features (input_size) in its last "
                             f"axis, got shape {tuple(x.shape)}")
        x_view = self._time_major(x, unbatched)
        T, B = x_view.shape[0], x_view.shape[1]
        if T == 0:
            raise ValueError(f"x has no time steps (T = 0, shape {tuple(x.shape)}); every "
                             "sequence needs at least one step")
        if B == 0:
            raise ValueError(f"x is an empty batch (B = 0, shape {tuple(x.shape)})")
        layer_input = self.backend.empty((T, B, self.input_size), self.dtype)
        layer_input[...] = x_view
        return layer_input, unbatched

    def _time_major(self, a, unbatched: bool):
        """(T, B, F) view of a sequence array given in the user's layout."""
        xp = self.backend.xp
        if unbatched:
            return xp.reshape(a, (a.shape[0], 1, a.shape[1]))
        return xp.permute_dims(a, (1, 0, 2)) if self.batch_first else a

    def _user_shape(self, T: int, B: int, F: int, unbatched: bool, features: str):
        """The shape of a (T, B, F) sequence in the user's layout and its axes' names, the
        last one ``features``: (T, B, F) "(steps, batch, <features>)", or (B, T, F) with
        batch_first, or (T, F) unbatched."""
        if unbatched:
            return (T, F), f"(steps, {features})"
        if self.batch_first:
            return (B, T, F), f"(batch, steps, {features})"
        return (T, B, F), f"(steps, batch, {features})"

    def _user_layout(self, a, unbatched: bool):
        """Inverse of :meth:`_time_major` for a (T, B, F) array."""
        xp = self.backend.xp
        if unbatched:
            return xp.reshape(a, (a.shape[0], a.shape[2]))
        return xp.permute_dims(a, (1, 0, 2)) if self.batch_first else a

    def _state_in(self, name, a, batch: int, unbatched: bool, size: int, size_name: str):
        """A (L*D, B, size) state argument (h0, c0, dh_n, dc_n) in time-major form, or None."""
        if a is None:
            return None
        LD = self.num_layers * self.num_directions
        a = as_input(self.backend, a, name, self.dtype, ndims=(2,) if unbatched else (3,))
        if unbatched:
            check_shape(name, a, (LD, size), f"(num_layers * num_directions, {size_name})")
            return self.backend.xp.reshape(a, (LD, 1, size))
        check_shape(name, a, (LD, batch, size),
                    f"(num_layers * num_directions, batch, {size_name})")
        return a

    def _state_out(self, a, unbatched: bool):
        return self.backend.xp.reshape(a, (a.shape[0], a.shape[2])) if unbatched else a

    @staticmethod
    def _pair(name, members, value):
        if value is None:
            return None, None
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be a pair {members} or None, got {type(value).__name__}")
        return value

