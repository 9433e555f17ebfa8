"""What every layer and model shares: the module contract, in one place.

    layer.params, layer.grads        dicts name -> array on the layer's device (same names)
    layer.named_parameters()         iterator of (name, array), names as in PyTorch
    layer.parameters()               iterator of arrays
    layer.forward(...)               training mode: keeps a *tape* (what backward needs) per
                                     call; eval mode keeps nothing
    layer.backward(..., tape=None)   consumes the most recent unconsumed tape (last in, first
                                     out: the order backpropagation visits a model), or the
                                     one given; *adds* to grads
    layer.zero_grad()                sets every gradient to zero, in place
    layer.train(mode=True), layer.eval(), layer.training
    layer.load_state_dict(d, strict=True), layer.state_dict(), layer.to(device)

Gradients accumulate over backward() calls until zero_grad(), as in PyTorch: two
micro-batches before one optimizer step sum their gradients, and a layer used twice in one
model (weight sharing) receives both uses' gradients. A tape is used once; a tape whose
forward ran before ``load_state_dict()`` or ``to()`` no longer matches the parameters and is
refused. ``forward(..., train=False)`` is an eval-mode forward for that one call (no dropout,
no tape) whatever the mode; ``train=True`` likewise a training-mode one.

:class:`Container` gives a model made of named layers the same protocol, its names being
"<layer>.<parameter>" (``lstm.weight_ih_l0``).
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np

from backends import get_backend

from .arrays import host_array
from .flat import zero_grad_flat

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

OUTSTANDING_TAPES_WARNING = 100     # training-mode forwards waiting for backward()


def _check_names(state_dict) -> None:
    """TypeError unless ``state_dict`` is a mapping whose keys are all strings."""
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"params must be a dict of arrays, got {type(state_dict).__name__}")
    for key in state_dict.keys():
        if not isinstance(key, str):
            raise TypeError(f"params keys must be parameter names (strings), got {key!r}")


class Tape:
    """What one training-mode forward kept for its backward. Opaque to users: pass it back
    to the ``backward`` of the layer that made it."""

    __slots__ = ("owner", "version", "data", "state")

    def __init__(self, owner, version: int, data):
        self.owner, self.version, self.data = owner, version, data
        self.state = "outstanding"        # -> "consumed", or the call that made it stale

    def __repr__(self) -> str:
        return f"<Tape of {type(self.owner).__name__}: {self.state}>"


class Module:
    """Base class of the layers: owns ``params``/``grads``, tapes, modes and devices.

    Subclasses call :meth:`_init_params` with host (NumPy) arrays once, implement
    ``forward``/``backward``, and use :meth:`_keep` / :meth:`_take` for their tapes.
    """

    # a layer without parameters may compute in its input's dtype (Dropout): dtype=None
    dtype_free = False

    def __init__(self, device="cpu", dtype="float32"):
        self.backend = get_backend(device)
        self.dtype = None if dtype is None and self.dtype_free else self.backend.dtype(dtype)
        self.params: dict = {}
        self.grads: dict = {}
        self.training = True
        self._tapes: list = []
        self._version = 0
        self._discarded_by = None
        self._last_forward_training = None      # the mode of the last forward, for messages

    @property
    def device(self) -> str:
        """The name of the device the parameters live on."""
        return self.backend.name

    @property
    def dtype_name(self):
        """"float32" or "float64", or None for a layer that takes its input's dtype."""
        return None if self.dtype is None else self.backend.dtype_name(self.dtype)

    def _init_params(self, host_params: dict) -> None:
        self.params = {k: self.backend.asarray(v, dtype=self.dtype, copy=True)
                       for k, v in host_params.items()}
        self.grads = {k: self.backend.zeros(tuple(v.shape), self.dtype)
                      for k, v in self.params.items()}

    # ----------------------------------------------------------------- parameters
    def named_parameters(self):
        yield from self.params.items()

    def parameters(self):
        yield from self.params.values()

    def num_params(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.params.values())

    def zero_grad(self) -> None:
        """Set every gradient entry to zero, in place (the arrays stay the same objects)."""
        if not zero_grad_flat(self):
            for g in self.grads.values():
                g[...] = 0

    # ---------------------------------------------------------------------- modes
    def train(self, mode: bool = True):
        """Training mode (dropout on, forwards keep tapes) or, with ``mode=False``, eval."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be True or False, got {mode!r}")
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode: no dropout, forwards keep nothing. Same as ``train(False)``."""
        return self.train(False)

    def _training_call(self, train) -> bool:
        """Whether this forward call runs in training mode (``train`` None: the layer's)."""
        if train is not None and not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train must be True, False or None (the layer's mode), got {train!r}")
        self._last_forward_training = self.training if train is None else bool(train)
        return self._last_forward_training

    # ---------------------------------------------------------------------- tapes
    def _keep(self, data) -> Tape:
        """Push the tape of a training-mode forward and return it."""
        tape = Tape(self, self._version, data)
        self._tapes.append(tape)
        if len(self._tapes) == OUTSTANDING_TAPES_WARNING:
            warnings.warn(f"{OUTSTANDING_TAPES_WARNING} training-mode forwards of this "
                          f"{type(self).__name__} are waiting for backward(), and each keeps "
                          "its activations; for inference call eval() or pass train=False",
                          RuntimeWarning, stacklevel=3)
        return tape

    def _find_tape(self, tape=None) -> Tape:
        """``tape``, or the most recent outstanding one, checked usable (not yet removed:
        backward validates its arguments first, then calls :meth:`_consume`)."""
        if tape is None:
            if not self._tapes and self._last_forward_training is False:
                me = type(self).__name__.lower()
                raise RuntimeError(f"backward() has nothing to use: the last forward ran in eval "
                                   f"mode ({me}.eval() or train=False); call {me}.train() or "
                                   f"forward(..., train=True) to keep what backward needs")
            if not self._tapes:
                why = (f"; the forwards kept before were discarded by {self._discarded_by}, "
                       "which changed the parameters" if self._discarded_by else "")
                raise RuntimeError("backward() needs the activations of a forward(..., "
                                   "train=True) call, and each backward() uses them up; call "
                                   f"forward() again{why}")
            return self._tapes[-1]
        if not isinstance(tape, Tape):
            raise TypeError(f"tape must be a tape returned by forward(..., return_tape=True), "
                            f"got {type(tape).__name__}")
        if tape.owner is not self:
            raise RuntimeError(f"this tape was made by another layer ({tape.owner!r}), not by "
                               f"this {type(self).__name__}")
        if tape.state == "consumed":
            raise RuntimeError("this tape was already used by a backward(); each forward "
                               "backpropagates once: run forward() again")
        if tape.state != "outstanding":
            raise RuntimeError(f"this tape's forward ran before {tape.state} changed the "
                               "parameters, so its activations no longer match them: run "
                               "forward() again")
        return tape

    def _consume(self, tape: Tape):
        """Remove ``tape`` from the outstanding ones and return its data."""
        self._tapes.remove(tape)
        tape.state = "consumed"
        return tape.data

    def _take(self, tape=None):
        """:meth:`_find_tape` then :meth:`_consume`, for layers with nothing to check between."""
        return self._consume(self._find_tape(tape))

    def _parameters_changed(self, by: str) -> None:
        """Outstanding tapes no longer match the parameters: make them stale."""
        self._version += 1
        for tape in self._tapes:
            tape.state = by
        if self._tapes:
            self._discarded_by = by
        self._tapes = []

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict:
        """Host (NumPy) copies of the parameters, by name."""
        return {k: np.array(self.backend.to_numpy(v)) for k, v in self.params.items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict`` (name -> NumPy array, array on this device, or any array with
        ``__dlpack__``/``__array__``, e.g. a torch tensor) into the parameters.

        With ``strict`` the names must match exactly; otherwise the names present are loaded
        and the others reported. Shapes must agree; floating values of another precision are
        converted to the layer's dtype. Values must be finite. Nothing is changed unless every
        entry is valid. Outstanding tapes become stale if anything was loaded.

        Returns:
            (missing_keys, unexpected_keys), as ``torch.nn.Module.load_state_dict``.

        Raises:
            ValueError: (strict) missing or extra names, a wrong shape, or non-finite values.
            TypeError: ``state_dict`` not a mapping, or a value that is not a floating array.
        """
        staged, keys = self._stage(state_dict, strict)
        self._commit(staged)
        return keys

    def _stage(self, state_dict, strict: bool, prefix: str = ""):
        """Check ``state_dict`` against this layer without changing anything: the host arrays
        to load by name, and the (missing, unexpected) keys. ``prefix`` ("head.") is how the
        names appear to the user, for messages and the returned keys."""
        _check_names(state_dict)
        missing = sorted(prefix + k for k in set(self.params) - set(state_dict))
        extra = sorted(prefix + k for k in set(state_dict) - set(self.params))
        if strict and (missing or extra):
            parts = ([f"missing {missing}"] if missing else []) + \
                    ([f"unexpected {extra}"] if extra else [])
            raise ValueError(f"params do not match this {type(self).__name__}: "
                             f"{'; '.join(parts)}")
        staged = {}
        for name in self.params:
            if name not in state_dict:
                continue
            shown = prefix + name
            host = self._host_copy(shown, state_dict[name])
            want = tuple(self.params[name].shape)
            if host.shape != want:
                raise ValueError(f"params[{shown!r}] must have shape {want}, got {host.shape}")
            if not np.issubdtype(host.dtype, np.floating):
                raise TypeError(f"params[{shown!r}] must be floating point, got {host.dtype}")
            if not np.all(np.isfinite(host)):
                raise ValueError(f"params[{shown!r}] contains NaN or Inf")
            staged[name] = host
        return staged, IncompatibleKeys(missing, extra)

    def _commit(self, staged: dict) -> None:
        if not staged:
            return
        for name, host in staged.items():
            self.params[name][...] = self.backend.asarray(host, dtype=self.dtype)
        self._parameters_changed("load_state_dict()")

    def load_params(self, params) -> None:
        """``load_state_dict(params, strict=True)`` (the older name)."""
        self.load_state_dict(params, strict=True)

    def _host_copy(self, name: str, value) -> np.ndarray:
        if self.backend.owns(value):
            return np.asarray(self.backend.to_numpy(value))
        host = host_array(value)
        if host is None:
            raise TypeError(f"params[{name!r}] must be an array (NumPy, the layer's device, or "
                            f"one with __dlpack__/__array__), got "
                            f"{type(value).__module__}.{type(value).__name__}")
        return host

    def to(self, device):
        """Move parameters and gradients to ``device`` (a name or Backend); returns self.
        Outstanding tapes become stale."""
        target = get_backend(device)
        if target is self.backend:
            return self
        dtype = None if self.dtype is None else target.dtype(self.dtype_name)

        def move(v):
            return target.asarray(self.backend.to_numpy(v), dtype=dtype, copy=True)

        self.params = {k: move(v) for k, v in self.params.items()}
        self.grads = {k: move(v) for k, v in self.grads.items()}
        self.backend, self.dtype = target, dtype
        self._parameters_changed("to()")
        return self


class Container:
    """Named layers (``self.layers``: name -> Module) with the module protocol; parameter
    names are "<layer>.<name>". Containers nest: a layer may itself be a Container."""

    layers: dict

    @property
    def backend(self):
        return next(iter(self.layers.values())).backend

    @property
    def training(self) -> bool:
        return all(layer.training for layer in self.layers.values())

    def named_parameters(self):
        for lname, layer in self.layers.items():
            for name, value in layer.named_parameters():
                yield f"{lname}.{name}", value

    def parameters(self):
        for _, value in self.named_parameters():
            yield value

    @property
    def params(self) -> dict:
        return dict(self.named_parameters())

    @property
    def grads(self) -> dict:
        return {f"{lname}.{name}": g for lname, layer in self.layers.items()
                for name, g in layer.grads.items()}

    def num_params(self) -> int:
        return sum(layer.num_params() for layer in self.layers.values())

    def optimizable(self) -> list:
        """The layers, in a fixed order, for an optimizer."""
        return list(self.layers.values())

    def zero_grad(self) -> None:
        if not zero_grad_flat(self):
            for layer in self.layers.values():
                layer.zero_grad()

    def train(self, mode: bool = True):
        for layer in self.layers.values():
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self) -> dict:
        return {f"{lname}.{k}": v for lname, layer in self.layers.items()
                for k, v in layer.state_dict().items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Load "<layer>.<param>" arrays into each layer (see Module.load_state_dict): every
        layer is checked before any is changed; keys of no layer are unexpected."""
        staged, keys = self._stage(state_dict, strict)
        self._commit(staged)
        return keys

    def _stage(self, state_dict, strict: bool, prefix: str = ""):
        _check_names(state_dict)
        unknown = sorted(prefix + k for k in state_dict
                         if k.split(".", 1)[0] not in self.layers or "." not in k)
        if unknown and strict:
            raise ValueError(f"state has parameters for no layer of this model: {unknown}; "
                             f"its layers are {sorted(self.layers)}")
        staged, missing, unexpected = {}, [], list(unknown)
        for lname, layer in self.layers.items():
            head = lname + "."
            part = {k[len(head):]: v for k, v in state_dict.items() if k.startswith(head)}
            if not part and not strict:
                missing += [prefix + head + k for k, _ in layer.named_parameters()]
                continue
            staged[lname], keys = layer._stage(part, strict, prefix + head)
            missing += keys.missing_keys
            unexpected += keys.unexpected_keys
        return staged, IncompatibleKeys(missing, unexpected)

    def _commit(self, staged: dict) -> None:
        for lname, layer_staged in staged.items():
            self.layers[lname]._commit(layer_staged)

    def to(self, device):
        for layer in self.layers.values():
            layer.to(device)
        return self
