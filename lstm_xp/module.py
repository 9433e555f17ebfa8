"""What every layer shares: named parameters and gradients on one backend.

Conventions (the same for LSTM, Linear and the losses' callers):
    layer.params     dict name -> array on the layer's device
    layer.grads      dict with the same names: gradients of the last ``backward``
    layer.forward(...) / layer.backward(...)
    layer.load_params(d), layer.state_dict(), layer.to(device)
"""

from __future__ import annotations

import numpy as np

from backends import get_backend

from .arrays import array_library, to_numpy


class Module:
    """Base class: owns ``params``/``grads`` and moves them between devices.

    Subclasses call :meth:`_init_params` with host (NumPy) arrays once, and implement
    ``forward``/``backward`` plus :meth:`_drop_saved` (forget what forward kept).
    """

    def __init__(self, device="cpu", dtype="float32"):
        self.backend = get_backend(device)
        self.dtype = self.backend.dtype(dtype)
        self.params: dict = {}
        self.grads: dict = {}

    @property
    def device(self) -> str:
        """The name of the device the parameters live on."""
        return self.backend.name

    @property
    def dtype_name(self) -> str:
        return self.backend.dtype_name(self.dtype)

    def _init_params(self, host_params: dict) -> None:
        self.params = {k: self.backend.asarray(v, dtype=self.dtype, copy=True)
                       for k, v in host_params.items()}
        self.grads = {k: self.backend.zeros(tuple(v.shape), self.dtype)
                      for k, v in self.params.items()}

    def _drop_saved(self) -> None:
        """Forget activations kept for backward (subclasses that keep any override this)."""

    def num_params(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.params.values())

    def state_dict(self) -> dict:
        """Host (NumPy) copies of the parameters, by name."""
        return {k: np.array(self.backend.to_numpy(v)) for k, v in self.params.items()}

    def load_params(self, params: dict) -> None:
        """Copy ``params`` (name -> NumPy or device array) into this layer's parameters.

        Names must match exactly and shapes must agree; floating values of another
        precision are converted to the layer's dtype. Values must be finite. Nothing is
        changed unless every entry is valid.

        Raises:
            ValueError: missing or extra names, a wrong shape, or non-finite values.
            TypeError: ``params`` not a mapping, or a value that is not a floating array.
        """
        if not hasattr(params, "keys"):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        missing = sorted(set(self.params) - set(params))
        extra = sorted(set(params) - set(self.params))
        if missing or extra:
            parts = ([f"missing {missing}"] if missing else []) + \
                    ([f"unexpected {extra}"] if extra else [])
            raise ValueError(f"params do not match this {type(self).__name__}: "
                             f"{'; '.join(parts)}")
        staged = {}
        for name, value in params.items():
            host = self._host_copy(name, value)
            want = tuple(self.params[name].shape)
            if host.shape != want:
                raise ValueError(f"params[{name!r}] must have shape {want}, got {host.shape}")
            if not np.issubdtype(host.dtype, np.floating):
                raise TypeError(f"params[{name!r}] must be floating point, got {host.dtype}")
            if not np.all(np.isfinite(host)):
                raise ValueError(f"params[{name!r}] contains NaN or Inf")
            staged[name] = host
        for name, host in staged.items():
            self.params[name][...] = self.backend.asarray(host, dtype=self.dtype)
        self._drop_saved()

    def _host_copy(self, name: str, value) -> np.ndarray:
        if self.backend.owns(value):
            return np.asarray(self.backend.to_numpy(value))
        if isinstance(value, np.ndarray) or array_library(value) == "cupy":
            return to_numpy(value)
        raise TypeError(f"params[{name!r}] must be a NumPy array or an array on the layer's "
                        f"device, got {type(value).__module__}.{type(value).__name__}"
                        + (" (use tensor.detach().numpy())" if array_library(value) == "torch"
                           else ""))

    def to(self, device):
        """Move parameters and gradients to ``device`` (a name or Backend); returns self."""
        target = get_backend(device)
        if target is self.backend:
            return self
        dtype = target.dtype(self.dtype_name)

        def move(v):
            return target.asarray(self.backend.to_numpy(v), dtype=dtype, copy=True)

        self.params = {k: move(v) for k, v in self.params.items()}
        self.grads = {k: move(v) for k, v in self.grads.items()}
        self.backend, self.dtype = target, dtype
        self._drop_saved()
        return self
