"""Optimizers and gradient clipping over layers that follow the params/grads convention.

    opt = Adam([lstm, head], lr=1e-3)
    opt.zero_grad()                       # gradients accumulate until zeroed
    ... forward, loss, backward ...
    clip_grad_norm([lstm, head], max_norm=1.0)
    opt.step()

The update formulas are torch.optim's (SGD with momentum, Nesterov and L2 weight decay;
Adam with L2 weight decay; AdamW with decoupled decay); the tests compare them over steps.

Parameters are updated in place. An optimizer puts each model's parameters and gradients
in one flat buffer (``layer.params`` then holds views of it, see :mod:`lstm_xp.flat`), so a
step and the clipping cost the same few array operations for any number of parameter
arrays. All arithmetic stays on the layers' device; nothing here synchronises with the host.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .flat import current_groups, flatten, leaf_layers, zero_grad_flat


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
    """Base: updates the layers' parameters group by group; subclasses define ``_update``.

    The parameters are put in flat buffers first (:func:`lstm_xp.flat.flatten`: one per
    backend and dtype, the layers' dicts then hold views), so that a step is a fixed number
    of array operations whatever the number of parameter arrays; the per-parameter state
    (momentum, Adam's moments) is flat alike. A parameter array fetched before the optimizer
    was made is therefore no longer the parameter: fetch ``layer.params[name]`` again.
    Layers that keep their parameters some other way, or tie weights by sharing one array,
    are updated array by array.
    """

    def __init__(self, layers, lr):
        self.layers = _layers(layers)
        self.lr = _positive("lr", lr)
        self.steps = 0
        self._plan: list = []        # [(backend, params, grads, layout)], see _groups()
        self._slots: dict = {}       # (group index, slot name) -> array shaped like params
        self._groups()

    def _entries(self):
        """(key, layer, name, param) for every parameter, keys as in :meth:`state_dict`."""
        for i, layer in enumerate(self.layers):
            for name, param in layer.params.items():
                yield f"{i}.{name}", layer, name, param

    def _groups(self) -> list:
        """This step's groups [(backend, params, grads, layout)], layout [(key, offset, size,
        shape)] placing each parameter in the group's (flattened) arrays. When the groups
        change (a layer moved with ``to()``, say) the optimizer state moves with them."""
        flat = flatten(self.layers)
        if flat is not None and len(flat) == len(self._plan) and all(
                g.params is planned[1] for g, planned in zip(flat, self._plan)):
            return self._plan                                   # unchanged since last step
        if flat is not None:
            where = {id(p): (gi, offset, size) for gi, group in enumerate(flat)
                     for _, _, offset, size, p in group.views()}
            layouts = [[] for _ in flat]
            for key, _, _, param in self._entries():
                gi, offset, size = where[id(param)]
                layouts[gi].append((key, offset, size, tuple(param.shape)))
            plan = [(g.backend, g.params, g.grads, layout) for g, layout in zip(flat, layouts)]
        else:
            plan = [(layer.backend, p, layer.grads[name], [(key, 0, int(p.size), tuple(p.shape))])
                    for key, layer, name, p in self._entries()]
        if [id(g[1]) for g in plan] != [id(g[1]) for g in self._plan]:
            saved = self._host_state()
            self._plan, self._slots = plan, {}
            self._put_state(saved)
        return self._plan

    def _slot(self, gi: int, slot: str):
        buf = self._slots.get((gi, slot))
        if buf is None:
            backend, params = self._plan[gi][0], self._plan[gi][1]
            buf = self._slots[(gi, slot)] = backend.zeros(tuple(params.shape), params.dtype)
        return buf

    def zero_grad(self) -> None:
        """Set the gradients of every layer this optimizer updates to zero, in place."""
        if not zero_grad_flat(self.layers):
            for layer in self.layers:
                layer.zero_grad()

    def step(self) -> None:
        """Update every parameter from its gradient (one optimisation step). Forwards still
        waiting for their backward become stale: their activations were made with the old
        parameters (as torch refuses a backward through weights changed in place)."""
        self.steps += 1
        for gi, (backend, params, grads, _) in enumerate(self._groups()):
            self._update(gi, backend, params, grads)
        for layer in self.layers:
            changed = getattr(layer, "_parameters_changed", None)
            if changed is not None:
                changed("an optimizer step")

    def _update(self, gi, backend, params, grads) -> None:
        raise NotImplementedError

    def _host_state(self) -> dict:
        """The per-parameter state as host arrays, "<key>.<slot>" -> array."""
        out = {}
        for (gi, slot), buf in self._slots.items():
            backend, params, _, layout = self._plan[gi]
            host = np.asarray(backend.to_numpy(buf)).reshape(-1)
            for key, offset, size, shape in layout:
                out[f"{key}.{slot}"] = host[offset:offset + size].reshape(shape).copy()
        return out

    def _put_state(self, state: dict) -> None:
        """Load :meth:`_host_state`-style arrays into the current groups' slots (entries
        with no saved value start at zero)."""
        slots = {key.rsplit(".", 1)[1] for key in state}
        for gi, (backend, params, _, layout) in enumerate(self._plan):
            for slot in sorted(slots):
                values = [(offset, size, state.get(f"{key}.{slot}"))
                          for key, offset, size, _ in layout]
                if all(v is None for _, _, v in values):
                    continue
                host = np.zeros(int(params.size), dtype=np.dtype(backend.dtype_name(params.dtype)))
                for offset, size, v in values:
                    if v is not None:
                        host[offset:offset + size] = np.reshape(v, -1)
                self._slots[(gi, slot)] = backend.asarray(host.reshape(tuple(params.shape)),
                                                          dtype=params.dtype, copy=True)

    def state_dict(self) -> dict:
        """Host copies of the optimizer state: the step count, and per parameter and slot
        "<layer index>.<param name>.<slot>" (e.g. ``"0.weight_ih_l0.m"``)."""
        self._groups()
        return {"steps": np.asarray(self.steps), **self._host_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (layers must match in order and shapes)."""
        if "steps" not in state:
            raise ValueError("optimizer state lacks 'steps'")
        known = {key: tuple(p.shape) for key, _, _, p in self._entries()}
        restored = {}
        for key, value in state.items():
            if key == "steps":
                continue
            shape = known.get(key.rsplit(".", 1)[0])
            if shape is None or tuple(np.shape(value)) != shape:
                raise ValueError(f"optimizer state entry {key!r} does not match these layers")
            restored[key] = np.asarray(value)
        self._groups()
        self.steps = int(state["steps"])
        self._slots = {}
        self._put_state(restored)


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

    def _update(self, gi, backend, params, grads) -> None:
        velocity = self._slot(gi, "velocity") if self.momentum else None
        backend.sgd_update(params, grads, velocity, self.current_lr(), self.momentum,
                           self.weight_decay, self.nesterov)


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

    def _update(self, gi, backend, params, grads) -> None:
        backend.adam_update(params, grads, self._slot(gi, "m"), self._slot(gi, "v"), self.steps,
                            self.lr, self.b1, self.b2, self.eps, self.weight_decay,
                            self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019; torch.optim.AdamW):

        p <- p * (1 - lr * weight_decay)          then Adam's update, without decay in g
    """

    decoupled = True

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(layers, lr, betas, eps, weight_decay)


def global_grad_norm(layers):
    """sqrt(sum of g^2 over every gradient entry of every layer), a 0-d device array: one
    reduction per flat group (see :mod:`lstm_xp.flat`)."""
    layers = _layers(layers)
    total = None
    for backend, grads in _gradient_arrays(layers):
        sq = backend.xp.sum(grads * grads)
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
    for _, grads in _gradient_arrays(_layers(layers)):
        grads *= factor


def _gradient_arrays(layers):
    """(backend, array) covering every gradient once: the flat groups' buffers when these
    layers are exactly some intact groups (an optimizer's), else each layer's arrays (no
    buffer is built here, so clipping a part of a model does not undo the optimizer's)."""
    leaves = leaf_layers(layers)
    groups = None if not leaves else current_groups(leaves)
    if groups is not None:
        return [(g.backend, g.grads) for g in groups]
    return [(layer.backend, g) for layer in layers for g in layer.grads.values()]
