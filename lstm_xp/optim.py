"""Optimizers and gradient clipping over layers that follow the params/grads convention.

    opt = Adam([lstm, head], lr=1e-3)
    opt.zero_grad()                       # gradients accumulate until zeroed
    ... forward, loss, backward ...
    clip_grad_norm([lstm, head], max_norm=1.0)
    opt.step()

The update formulas are torch.optim's (SGD with momentum, Nesterov and L2 weight decay;
Adam with L2 weight decay; AdamW with decoupled decay); the tests compare them over steps.

Parameters are updated in place, so ``layer.params`` keeps pointing at the same arrays.
All arithmetic stays on the layers' device; nothing here synchronises with the host.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from backends import backend_of


def _layers(layers) -> list:
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    for i, layer in enumerate(layers):
        if not (hasattr(layer, "params") and hasattr(layer, "grads")):
            raise TypeError(f"layers[{i}] must have .params and .grads dicts, "
                            f"got {type(layer).__name__}")
    return layers


def _positive(name, value, allow_zero=False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


class Optimizer:
    """Base: walks (key, param, grad) over the layers; subclasses define ``_update``."""

    def __init__(self, layers, lr):
        self.layers = _layers(layers)
        self.lr = _positive("lr", lr)
        self.steps = 0
        self.state: dict = {}

    def _entries(self):
        for i, layer in enumerate(self.layers):
            for name, param in layer.params.items():
                yield f"{i}.{name}", layer.backend, param, layer.grads[name]

    def _slot(self, key: str, slot: str, backend, like):
        full = f"{key}.{slot}"
        buf = self.state.get(full)
        if buf is None:
            buf = self.state[full] = backend.zeros(tuple(like.shape), like.dtype)
        elif not backend.owns(buf):        # the layer moved device (layer.to): follow it
            host = backend_of(buf).to_numpy(buf)
            buf = self.state[full] = backend.asarray(host, dtype=like.dtype, copy=True)
        return buf

    def zero_grad(self) -> None:
        """Set the gradients of every layer this optimizer updates to zero, in place."""
        for layer in self.layers:
            layer.zero_grad()

    def step(self) -> None:
        """Update every parameter from its gradient (one optimisation step). Forwards still
        waiting for their backward become stale: their activations were made with the old
        parameters (as torch refuses a backward through weights changed in place)."""
        self.steps += 1
        for key, backend, param, grad in self._entries():
            self._update(key, backend, param, grad)
        for layer in self.layers:
            changed = getattr(layer, "_parameters_changed", None)
            if changed is not None:
                changed("an optimizer step")

    def _update(self, key, backend, param, grad) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Host copies of the optimizer state (step count and per-parameter buffers)."""
        out = {"steps": np.asarray(self.steps)}
        for key, value in self.state.items():
            layer = self.layers[int(key.split(".", 1)[0])]
            out[key] = np.array(layer.backend.to_numpy(value))
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (layers must match in order and shapes)."""
        if "steps" not in state:
            raise ValueError("optimizer state lacks 'steps'")
        known = {f"{i}.{name}": (layer, p) for i, layer in enumerate(self.layers)
                 for name, p in layer.params.items()}
        restored = {}
        for key, value in state.items():
            if key == "steps":
                continue
            owner = known.get(key.rsplit(".", 1)[0])
            if owner is None or tuple(np.shape(value)) != tuple(owner[1].shape):
                raise ValueError(f"optimizer state entry {key!r} does not match these layers")
            layer = owner[0]
            restored[key] = layer.backend.asarray(value, dtype=layer.dtype, copy=True)
        self.steps = int(state["steps"])
        self.state = restored


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum, L2 weight decay and
    time-based learning-rate decay (torch.optim.SGD's formulas, dampening 0, plus ``decay``):

        lr_t = lr / (1 + decay * (t - 1))          (t = 1, 2, ... counts steps)
        g    = grad + weight_decay * p
        v    <- momentum * v + g                   (v = g at the first step)
        d    = g + momentum * v  if nesterov  else  v      (d = g when momentum = 0)
        p    <- p - lr_t * d
    """

    def __init__(self, layers, lr=0.01, momentum=0.0, decay=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(layers, lr)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        self.decay = _positive("decay", decay, allow_zero=True)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and not self.momentum:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.nesterov = bool(nesterov)

    def current_lr(self) -> float:
        return self.lr / (1.0 + self.decay * max(self.steps - 1, 0))

    def _update(self, key, backend, param, grad) -> None:
        lr_t = self.current_lr()
        g = grad + self.weight_decay * param if self.weight_decay else grad
        if self.momentum:
            v = self._slot(key, "velocity", backend, param)
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        param -= lr_t * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with bias correction and optional L2 weight decay
    (torch.optim.Adam's formulas):

        g = grad + weight_decay * p
        m <- b1 m + (1 - b1) g           v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    decoupled = False

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(layers, lr)
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"betas must be a pair (b1, b2) of numbers in [0, 1), got {betas!r}")
        b1, b2 = betas
        self.b1, self.b2 = float(b1), float(b2)
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)

    def _update(self, key, backend, param, grad) -> None:
        xp = backend.xp
        if self.weight_decay and self.decoupled:
            param *= 1.0 - self.lr * self.weight_decay
        elif self.weight_decay:
            grad = grad + self.weight_decay * param
        m = self._slot(key, "m", backend, param)
        v = self._slot(key, "v", backend, param)
        m *= self.b1
        m += (1.0 - self.b1) * grad
        v *= self.b2
        v += (1.0 - self.b2) * (grad * grad)
        m_hat = 1.0 / (1.0 - self.b1 ** self.steps)
        v_hat = 1.0 / (1.0 - self.b2 ** self.steps)
        param -= (self.lr * m_hat) * m / (xp.sqrt(v * v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019; torch.optim.AdamW):

        p <- p * (1 - lr * weight_decay)          then Adam's update, without decay in g
    """

    decoupled = True

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(layers, lr, betas, eps, weight_decay)


def global_grad_norm(layers):
    """sqrt(sum of g^2 over every gradient entry of every layer), a 0-d device array."""
    layers = _layers(layers)
    total = None
    for layer in layers:
        xp = layer.backend.xp
        for g in layer.grads.values():
            sq = xp.sum(g * g)
            total = sq if total is None else total + sq
    return None if total is None else layers[0].backend.xp.sqrt(total)


def clip_grad_norm(layers, max_norm: float):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

        norm = global_grad_norm(layers)        g <- g * min(1, max_norm / norm)

    Returns the norm before clipping as a 0-d array on the layers' device (no host sync).
    """
    max_norm = _positive("max_norm", max_norm)
    layers = _layers(layers)
    norm = global_grad_norm(layers)
    if norm is None:
        return None
    scale_grads(layers, max_norm / layers[0].backend.xp.maximum(norm, max_norm))
    return norm


def scale_grads(layers, factor) -> None:
    """g <- g * factor for every gradient (factor: a number or a 0-d device array)."""
    for layer in _layers(layers):
        for g in layer.grads.values():
            g *= factor
