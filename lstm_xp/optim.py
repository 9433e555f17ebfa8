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
from collections.abc import Mapping

import numpy as np

from .arrays import host_array, shown
from .flat import current_groups, flatten, leaf_layers, zero_grad_flat

# The largest step count load_state_dict() accepts: 2**53 is the last integer a float64
# counts exactly, and the step count becomes a float where it is used (Adam's bias
# corrections b ** t, SGD's lr / (1 + decay * (t - 1))); past it t + 1 == t there, and
# near 10**308 b ** t raises OverflowError. No run comes close (10**9 steps a second for
# 100 days is 2**53), so a larger count is a damaged state, not a long run.
MAX_STEPS = 2**53

# how each caller of _layers() is introduced in the message for bare arrays:
# name -> (what it takes, an example call, what it reads)
_TAKES = {
    "clip_grad_norm": ("the layers whose gradients to clip",
                       "clip_grad_norm([lstm, head], max_norm=1.0)",
                       "it scales each layer's .grads"),
    "global_grad_norm": ("the layers whose gradients to measure",
                         "global_grad_norm([lstm, head])", "it reads each layer's .grads"),
    "scale_grads": ("the layers whose gradients to scale", "scale_grads([lstm, head], 0.5)",
                    "it scales each layer's .grads"),
}


def _is_layer(x) -> bool:
    return hasattr(x, "params") and hasattr(x, "grads")


def _is_array(x) -> bool:
    """An array (NumPy, CuPy, torch, ...) or a (name, array) pair from named_parameters()."""
    if isinstance(x, tuple) and len(x) == 2:
        x = x[1]
    return hasattr(x, "shape") and hasattr(x, "dtype") and not _is_layer(x)


def _layers(layers, who: str) -> list:
    """``layers`` as a list: one layer, or a list, tuple, generator (any iterable but a set,
    whose order changes between runs) of layers. ``who`` (the optimizer class or function
    name) introduces the message refusing arrays (``lstm.parameters()``, torch's spelling,
    or a dict of them): they carry no gradients to work from."""
    if _is_layer(layers):
        return [layers]
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        items = [layers]
    elif isinstance(layers, Mapping) or _is_array(layers):
        raise TypeError(_bare_arrays(who, type(layers).__name__))
    elif isinstance(layers, (set, frozenset)):
        raise TypeError(f"{who} takes the layers in a list, not a {type(layers).__name__}: "
                        f"their order names the saved state ('0.weight_ih_l0.m' is layer 0's), "
                        f"and a set's order changes from run to run")
    else:
        items = list(layers)
    for i, layer in enumerate(items):
        if _is_array(layer):
            raise TypeError(_bare_arrays(who, f"{type(layers).__name__} of "
                                              f"{type(layer).__name__}"))
        if not _is_layer(layer):
            raise TypeError(f"layers[{i}] must have .params and .grads dicts, "
                            f"got {type(layer).__name__}")
    return items


def _bare_arrays(who: str, got: str) -> str:
    takes, example, reads = _TAKES.get(who, ("the layers to update",
                                             f"{who}([lstm, head], lr=...)",
                                             "an optimizer reads each layer's .params and .grads"))
    return (f"{who} takes {takes}, e.g. {example}, not lstm.parameters(): {reads}, and bare "
            f"arrays carry no gradients; got {got}")


def _positive(name, value, allow_zero=False) -> float:
    """``value`` as a float, or ValueError naming ``name`` unless it is a real number, finite
    as a float (a Python int beyond float's range is refused too), > 0 (or >= 0)."""
    try:
        ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
              and math.isfinite(value))
    except OverflowError:                       # an int too large for a float
        ok = False
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {shown(value)}")
    return float(value)


def _betas(betas) -> tuple:
    """Adam's (b1, b2) as floats, or ValueError naming betas."""
    def ok(b):
        return (isinstance(b, numbers.Real) and not isinstance(b, (bool, np.bool_))
                and 0 <= b < 1)                 # False for NaN; exact for huge ints
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(map(ok, betas))):
        text = (f"({', '.join(map(shown, betas))}{',' if len(betas) == 1 else ''})"
                if isinstance(betas, tuple) else shown(betas))
        raise ValueError(f"betas must be a pair (b1, b2) of numbers in [0, 1), got {text}")
    return float(betas[0]), float(betas[1])


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

    # the per-parameter state a subclass keeps, by slot name (what load_state_dict accepts;
    # None: any name), and the slots that must be >= 0
    slots: tuple | None = None
    nonnegative_slots: tuple = ()

    def __init__(self, layers, lr):
        self.layers = _layers(layers, type(self).__name__)
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
        """Restore what :meth:`state_dict` returned (layers must match in order and shapes).

        The whole state is checked before anything changes: a mapping with string keys,
        ``'steps'`` an integer in [0, MAX_STEPS] (a Python or NumPy integer, or a 0-d integer
        array), and every other entry "<layer index>.<param name>.<slot>" a floating array
        shaped like its parameter, of a slot this optimizer keeps, with finite values.

        Raises:
            TypeError: ``state`` not a mapping, a key not a string, or an entry of the wrong
                kind (not an integer, not a floating array).
            ValueError: 'steps' missing or out of range, an entry that matches no parameter
                or slot, of the wrong shape, or with NaN, Inf (or, where a slot must be
                >= 0, negative) values.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"optimizer state must be a dict (what state_dict() returned), "
                            f"got {type(state).__name__}")
        for key in state:
            if not isinstance(key, str):
                raise TypeError(f"optimizer state keys must be strings "
                                f"('steps', '<layer index>.<param name>.<slot>'), got {key!r}")
        if "steps" not in state:
            raise ValueError("optimizer state lacks 'steps'")
        steps = _step_count(state["steps"])
        known = {key: (tuple(p.shape), layer.backend.dtype_name(p.dtype))
                 for key, layer, _, p in self._entries()}
        restored = {key: self._slot_value(key, value, known)
                    for key, value in state.items() if key != "steps"}
        self._groups()
        self.steps = steps
        self._slots = {}
        self._put_state(restored)

    def _slot_value(self, key: str, value, known: dict) -> np.ndarray:
        """State entry ``key`` checked against the parameter it belongs to, as a host array
        of the parameter's dtype (see :meth:`load_state_dict`)."""
        param, _, slot = key.rpartition(".")
        if param not in known:
            raise ValueError(f"optimizer state entry {key!r} names no parameter of these "
                             f"layers (keys are 'steps' and '<layer index>.<param name>."
                             f"<slot>', e.g. '0.weight_ih_l0.m')")
        if self.slots is not None and slot not in self.slots:
            raise ValueError(f"optimizer state entry {key!r} is for slot {slot!r}, which "
                             f"{type(self).__name__} does not keep (it keeps "
                             f"{', '.join(map(repr, self.slots))})")
        shape, dtype = known[param]
        host = host_array(value)
        if host is None or not np.issubdtype(host.dtype, np.floating):
            got = f"dtype {host.dtype}" if host is not None else type(value).__name__
            raise TypeError(f"optimizer state entry {key!r} must be a floating-point array, "
                            f"got {got}")
        if tuple(host.shape) != shape:
            raise ValueError(f"optimizer state entry {key!r} must have shape {shape} "
                             f"(its parameter's), got {tuple(host.shape)}")
        bad = int(np.sum(~np.isfinite(host)))
        if bad:
            raise ValueError(f"optimizer state entry {key!r} must hold finite values, got "
                             f"NaN or Inf in {bad} of its {host.size}")
        with np.errstate(over="ignore"):
            cast = host.astype(dtype)
        if not np.all(np.isfinite(cast)):
            raise ValueError(f"optimizer state entry {key!r} must hold values within "
                             f"{dtype}'s range (its parameter's dtype), got values up to "
                             f"{float(np.max(np.abs(host))):.4g}")
        if slot in self.nonnegative_slots and np.any(cast < 0):
            raise ValueError(f"optimizer state entry {key!r} must be >= 0 (a running mean "
                             f"of squared gradients), got values down to "
                             f"{float(np.min(cast)):.4g}")
        return cast


def _step_count(value) -> int:
    """An optimizer state's 'steps' as an int (see :meth:`Optimizer.load_state_dict`)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]                             # the 0-d array state_dict() returns
    if isinstance(value, np.ndarray):
        raise ValueError(f"optimizer state entry 'steps' must be a single integer (the "
                         f"number of steps taken), got {shown(value)}")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"optimizer state entry 'steps' must be an integer (the number of "
                        f"steps taken), got {shown(value)}")
    if not 0 <= value <= MAX_STEPS:
        raise ValueError(f"optimizer state entry 'steps' must be in [0, 2**53] (the number "
                         f"of steps taken), got {shown(value)}")
    return int(value)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum, L2 weight decay and
    time-based learning-rate decay (torch.optim.SGD's formulas, dampening 0, plus ``decay``):

        lr_t = lr / (1 + decay * (t - 1))          (t = 1, 2, ... counts steps)
        g    = grad + weight_decay * p
        v    <- momentum * v + g                   (v = g at the first step)
        d    = g + momentum * v  if nesterov  else  v      (d = g when momentum = 0)
        p    <- p - lr_t * d
    """

    slots = ("velocity",)

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
    slots = ("m", "v")
    nonnegative_slots = ("v",)

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(layers, lr)
        self.b1, self.b2 = _betas(betas)
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
    layers = _layers(layers, "global_grad_norm")
    total = None
    for backend, grads in _gradient_arrays(layers):
        sq = backend.xp.sum(grads * grads)
        total = sq if total is None else total + sq
    return None if total is None else layers[0].backend.xp.sqrt(total)


def clip_grad_norm(layers, max_norm: float):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

        norm = global_grad_norm(layers)        g <- g * min(1, max_norm / norm)

    Returns the norm before clipping as a 0-d array on the layers' device (no host sync).
    Finite gradients never become NaN: see :func:`_clip_factor`.
    """
    max_norm = _positive("max_norm", max_norm)
    layers = _layers(layers, "clip_grad_norm")
    norm = global_grad_norm(layers)
    if norm is None:
        return None
    scale_grads(layers, _clip_factor(layers[0].backend.xp, norm, max_norm))
    return norm


def _clip_factor(xp, norm, max_norm: float):
    """min(1, max_norm / norm) as a 0-d float64 device array, computed as

        max_norm / max(norm, max_norm)         in float64

    max_norm is a finite float > 0, exact in float64 whatever the gradients' dtype (1e39
    overflows float32), so the denominator is >= max_norm > 0 and finite unless the norm
    is: no 0/0 (zero gradients, any max_norm: 1 exactly), no Inf/Inf (max_norm beyond the
    gradients' range: 1 exactly, the gradients stay bitwise the same), a factor in [0, 1].
    A norm that overflowed to Inf (finite gradients beyond sqrt of the dtype's range) gives
    0, as torch's clip_grad_norm_ does; NaN or Inf gradients give NaN, as there.

    The factor is applied in the gradients' dtype (:func:`scale_grads`): for float32 ones a
    factor below float32's smallest subnormal (a norm over 2**149 times max_norm) rounds to 0."""
    return max_norm / xp.maximum(xp.astype(norm, xp.float64), max_norm)


def scale_grads(layers, factor) -> None:
    """g <- g * factor for every gradient (factor: a number or a 0-d device array; an array
    is cast to each gradient's dtype first, as strict array namespaces want)."""
    for backend, grads in _gradient_arrays(_layers(layers, "scale_grads")):
        if isinstance(factor, numbers.Number) or factor.dtype == grads.dtype:
            grads *= factor
        else:
            grads *= backend.xp.astype(factor, grads.dtype)


def _gradient_arrays(layers):
    """(backend, array) covering every gradient once: the flat groups' buffers when these
    layers are exactly some intact groups (an optimizer's), else each layer's arrays (no
    buffer is built here, so clipping a part of a model does not undo the optimizer's)."""
    leaves = leaf_layers(layers)
    groups = None if not leaves else current_groups(leaves)
    if groups is not None:
        return [(g.backend, g.grads) for g in groups]
    return [(layer.backend, g) for layer in layers for g in layer.grads.values()]
