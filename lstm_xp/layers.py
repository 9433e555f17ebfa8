"""Layers around the LSTM: a fully connected (linear) head."""

from __future__ import annotations

import math

import numpy as np

from .arrays import as_input, check_finite, flag, positive_int
from .module import Module


class Linear(Module):
    """Affine map over the last axis:  y = x W^T + b.

    Args:
        in_features: F_in.  out_features: F_out.
        bias: learn b (else b = 0 and there is no "bias" parameter).
        dtype, device, seed: as for :class:`lstm_xp.LSTM`.

    Parameters (PyTorch's names): ``weight`` (F_out, F_in), ``bias`` (F_out,), both
    initialised ~ U(-1/sqrt(F_in), 1/sqrt(F_in)) as ``torch.nn.Linear``.

    Shapes: x (..., F_in) -> y (..., F_out).  Backward, with N = prod(leading axes):
        dW = dy^T x  (summed over the N rows)    db = sum of dy over rows    dx = dy W
    """

    def __init__(self, in_features, out_features, bias=True, dtype="float32", device="cpu",
                 seed=None):
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        super().__init__(device, dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        host = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features))}
        if flag("bias", bias):
            host["bias"] = rng.uniform(-bound, bound, self.out_features)
        self._init_params(host)
        self._x = None

    def __repr__(self) -> str:
        return (f"Linear({self.in_features}, {self.out_features}, bias={'bias' in self.params}, "
                f"dtype={self.dtype_name!r}, device={self.device!r})")

    def _drop_saved(self) -> None:
        self._x = None

    def forward(self, x, *, train: bool = True):
        """x (..., F_in) -> y (..., F_out); keeps x for backward when ``train``."""
        xp = self.backend.xp
        x = as_input(self.backend, x, "x", self.dtype, copy=train)
        if len(x.shape) == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features (in_features) in its "
                             f"last axis, got shape {tuple(x.shape)}")
        check_finite(self.backend, {"x": x})
        x2 = xp.reshape(x, (-1, self.in_features))
        y = xp.matmul(x2, self.params["weight"].T)
        if "bias" in self.params:
            y += self.params["bias"]
        self._x = x2 if train else None
        self._lead = tuple(x.shape[:-1])
        return xp.reshape(y, self._lead + (self.out_features,))

    __call__ = forward

    def backward(self, dy):
        """dy (..., F_out) -> dx (..., F_in); fills ``grads``. Uses up what forward kept."""
        if self._x is None:
            raise RuntimeError("Linear.backward() needs a forward(..., train=True) first "
                               "(each backward uses it up)")
        xp = self.backend.xp
        dy = as_input(self.backend, dy, "dy", self.dtype)
        want = self._lead + (self.out_features,)
        if tuple(dy.shape) != want:
            raise ValueError(f"dy must have the shape of the last output {want}, "
                             f"got {tuple(dy.shape)}")
        check_finite(self.backend, {"dy": dy})
        dy2 = xp.reshape(dy, (-1, self.out_features))
        self.backend.matmul_into(dy2.T, self._x, out=self.grads["weight"])
        if "bias" in self.params:
            self.grads["bias"][...] = xp.sum(dy2, axis=0)
        self._x = None
        dx = xp.matmul(dy2, self.params["weight"])
        return xp.reshape(dx, self._lead + (self.in_features,))
