"""Losses: value and gradient, on whatever device the predictions live.

Each loss follows the layer convention: ``value = loss.forward(pred, target)`` returns a
0-d array on the predictions' device (``float(value)`` when you need the number) and
``loss.backward()`` returns dL/dpred shaped like ``pred``. Each forward checks its target
(MSE: no NaN/Inf, see ``lstm_xp.finite_checks``; cross-entropy: class indices in range),
with one host synchronisation -- none for a cross-entropy target given as host data.
"""

from __future__ import annotations

import numpy as np

from backends import backend_of

from .arrays import (array_library, as_input, c_contiguous, check_finite, check_shape,
                     python_numbers)


def _predictions(name: str, a, min_ndim: int):
    """The backend of a floating, non-empty prediction array, or a clear error."""
    try:
        backend = backend_of(a)
    except TypeError:
        raise TypeError(f"{name} must be an array (the model's output), "
                        f"got {type(a).__module__}.{type(a).__name__}") from None
    kind = backend.dtype_name(a.dtype)
    if not kind.startswith("float"):
        raise TypeError(f"{name} must be floating point, got dtype {kind}")
    if len(a.shape) < min_ndim or 0 in tuple(a.shape):
        raise ValueError(f"{name} must be a non-empty array with at least {min_ndim} "
                         f"dimension(s), got shape {tuple(a.shape)}")
    return backend


class MSELoss:
    """Mean squared error over every element.

        L = (1/N) sum_n (pred_n - target_n)^2          dL/dpred = (2/N) (pred - target)

    Shapes: pred (...), target the same shape; N = number of elements.
    """

    def __init__(self):
        self._diff = None

    def forward(self, pred, target):
        backend = _predictions("pred", pred, 0)
        target = as_input(backend, target, "target", pred.dtype, owner="pred")
        check_shape("target", target, tuple(pred.shape), "(the shape of pred)")
        check_finite(backend, {"target": target})
        xp = backend.xp
        self._diff = pred - target
        # summed in C order whatever the layout (a reshape of a strided array copies), so
        # that the value does not depend on the inputs' strides
        flat = xp.reshape(self._diff, (-1,))
        return xp.mean(flat * flat)

    __call__ = forward

    def backward(self):
        if self._diff is None:
            raise RuntimeError("MSELoss.backward() needs a forward() first")
        n = 1
        for s in self._diff.shape:
            n *= s
        grad = self._diff * (2.0 / n)
        self._diff = None
        return grad


class CrossEntropyLoss:
    """Softmax cross-entropy over the last axis with integer class targets.

        p = softmax(logits)        L = -(1/N) sum_n log p[n, target_n]
        dL/dlogits = (p - onehot(target)) / N

    Shapes: logits (..., C); target (...) integers in [0, C); N = number of positions.
    The log-softmax subtracts the row maximum first, so large logits cannot overflow.
    """

    def __init__(self):
        self._saved = None

    def forward(self, logits, target):
        backend = _predictions("logits", logits, 1)
        xp = backend.xp
        C = logits.shape[-1]
        target = self._class_indices(backend, target, tuple(logits.shape[:-1]), C)
        z = c_contiguous(backend, xp.reshape(logits, (-1, C)))
        z = z - xp.max(z, axis=1, keepdims=True)
        log_p = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
        t = xp.reshape(target, (-1, 1))
        picked = xp.take_along_axis(log_p, t, axis=1)
        self._saved = (backend, log_p, t, tuple(logits.shape))
        return -xp.mean(picked)

    __call__ = forward

    @staticmethod
    def _class_indices(backend, target, shape, C):
        """``target`` checked (integer kind, shape, values in [0, C)) and on the device. A
        host target (the training job's) is checked on the host before it moves: no sync;
        a device target costs one sync, to read its minimum and maximum."""
        on_device = backend.owns(target)
        if not on_device:
            if not (isinstance(target, (list, tuple)) or array_library(target) == "numpy"):
                raise TypeError(f"target must be a NumPy array or an array on the logits' "
                                f"device ({backend.name!r}), got {type(target).__name__}")
            target = python_numbers(target, "target") if isinstance(target, (list, tuple)) \
                else np.asarray(target)
        kind = backend.dtype_name(target.dtype) if on_device else target.dtype.name
        if kind not in ("int32", "int64"):
            raise TypeError(f"target must hold integer class indices (int32/int64), got {kind}")
        check_shape("target", target, shape, "(the shape of logits without its last axis)")
        if on_device:
            xp = backend.xp
            low, high = (int(v) for v in backend.to_numpy(xp.stack([xp.min(target),
                                                                     xp.max(target)])))
        else:
            low, high = int(target.min()), int(target.max())
        if low < 0 or high >= C:
            raise ValueError(f"target must hold class indices in [0, {C}), got values from "
                             f"{low} to {high}")
        return target if on_device else backend.asarray(target)

    def backward(self):
        if self._saved is None:
            raise RuntimeError("CrossEntropyLoss.backward() needs a forward() first")
        backend, log_p, t, shape = self._saved
        xp = backend.xp
        N, C = log_p.shape
        onehot = xp.astype(backend.arange(C, dtype=t.dtype) == t, log_p.dtype)
        grad = (xp.exp(log_p) - onehot) * (1.0 / N)
        self._saved = None
        return xp.reshape(grad, shape)


def _quantile_levels(quantiles) -> np.ndarray:
    """``quantiles`` as a float64 host array, strictly increasing, each in (0, 1)."""
    levels = python_numbers(quantiles, "quantiles") if isinstance(quantiles, (list, tuple)) \
        else np.asarray(quantiles)
    if levels.ndim != 1 or len(levels) == 0 or levels.dtype.kind not in "fiu":
        raise ValueError(f"quantiles must be a non-empty list of numbers, got {quantiles!r}")
    levels = levels.astype(np.float64)
    if not np.all((levels > 0) & (levels < 1)):
        raise ValueError(f"quantiles must each lie in (0, 1), got {levels.tolist()}")
    if np.any(np.diff(levels) <= 0):
        raise ValueError(f"quantiles must be strictly increasing, got {levels.tolist()}")
    return levels


class PinballLoss:
    """The pinball (quantile) loss of Q quantile forecasts, averaged over every element.

    For level tau_q and error e = target - pred_q:
        rho_tau(e) = max(tau e, (tau - 1) e)         L = (1/N) sum_{n,q} rho_{tau_q}(e_{n,q})
        dL/dpred_q = (1/N) (1[e < 0] - tau_q)        (1/2 - tau_q at e = 0: the mean of
                                                      the one-sided slopes, what a central
                                                      difference gives at the kink)
    Its minimiser over a constant pred_q is the tau_q-quantile of the targets (Koenker &
    Bassett, 1978).

    Args:
        quantiles: the levels tau_1 < ... < tau_Q, each in (0, 1).

    Shapes: pred (..., Q); target (...) (each target scored against its Q forecasts);
    N = number of elements of pred.
    """

    def __init__(self, quantiles):
        self.quantiles = _quantile_levels(quantiles)
        self._saved = None

    def forward(self, pred, target):
        backend = _predictions("pred", pred, 1)
        Q = len(self.quantiles)
        if pred.shape[-1] != Q:
            raise ValueError(f"pred must hold the {Q} quantiles in its last axis, got shape "
                             f"{tuple(pred.shape)}")
        target = as_input(backend, target, "target", pred.dtype, owner="pred")
        check_shape("target", target, tuple(pred.shape[:-1]),
                    "(the shape of pred without its last axis)")
        check_finite(backend, {"target": target})
        xp = backend.xp
        tau = backend.asarray(self.quantiles, pred.dtype)
        e = xp.expand_dims(target, -1) - pred
        self._saved = (e, tau)
        loss = xp.maximum(tau * e, (tau - 1) * e)
        return xp.mean(xp.reshape(loss, (-1,)))

    __call__ = forward

    def backward(self):
        if self._saved is None:
            raise RuntimeError("PinballLoss.backward() needs a forward() first")
        e, tau = self._saved
        xp = backend_of(e).xp
        n = 1
        for s in e.shape:
            n *= s
        below = xp.astype(e < 0, e.dtype) + 0.5 * xp.astype(e == 0, e.dtype)
        self._saved = None
        return (below - tau) * (1.0 / n)
