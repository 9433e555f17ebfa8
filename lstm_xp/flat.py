"""Parameters and gradients of a model in one flat buffer each, the layers' dicts holding views.

    groups = flatten(layers)      # what Optimizer(layers) calls
    group.params, group.grads     # (N,) arrays: every parameter entry of the group, in order
    layer.params[name]            # a view of group.params (likewise grads)

An optimizer step, the global gradient norm and gradient clipping then cost a fixed number
of array operations (kernel launches on a GPU) per group, however many parameter arrays
the model has. A group holds the layers of one backend and one dtype, so a model usually
is one group.

The views stay valid until something replaces a layer's arrays (``layer.to()``, or
assigning ``layer.params[name]``); :func:`flatten` notices (:meth:`FlatGroup.intact`) and
builds new buffers from the arrays then in place. So a reference to a parameter array taken
before the first flatten (before the optimizer was made) is no longer the parameter after
it: read ``layer.params[name]`` again. Not flattened (callers then work array by array):
layers that are not :class:`Module`-like (no ``params``/``grads`` dicts of their own), and
sets of layers in which one array is the parameter of two entries (weights tied by sharing
the array), which a buffer would untie.

Only optimizers build groups; clipping, the gradient norm and ``zero_grad`` use them when
their layers are exactly a group's, else go array by array. Two optimizers over overlapping
layers rebuild the buffers at each other's steps: exact, but each rebuild copies through
the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class FlatGroup:
    """One backend's and dtype's parameters in ``params`` (N,), gradients in ``grads`` (N,).

    ``members`` lists (layer, name, offset, param view, grad view): ``layer.params[name]`` is
    the param view, ``params[offset:offset + size]`` reshaped, and likewise for grads.
    """

    backend: object
    params: object
    grads: object
    members: list = field(default_factory=list)

    def intact(self) -> bool:
        """Whether every member's arrays are still this group's views."""
        return all(layer.params.get(name) is p and layer.grads.get(name) is g
                   for layer, name, _, p, g in self.members)

    def views(self):
        """(layer, name, offset, size, param view) for each member."""
        for layer, name, offset, p, _ in self.members:
            yield layer, name, offset, int(p.size), p


def leaf_layers(layers) -> list | None:
    """The layers owning parameter dicts under ``layers`` (a layer, a model, or a list of
    them; models are searched through their ``.layers``), each once, in order; None if one
    of them keeps its parameters otherwise (it cannot be flattened)."""
    out, seen = [], set()
    stack = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    stack.reverse()
    while stack:
        layer = stack.pop()
        children = getattr(layer, "layers", None)
        if isinstance(children, dict):
            stack.extend(reversed(list(children.values())))
            continue
        own = vars(layer) if hasattr(layer, "__dict__") else {}
        if not (isinstance(own.get("params"), dict) and isinstance(own.get("grads"), dict)
                and hasattr(layer, "backend")):
            return None
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out


def current_groups(leaves: list) -> list | None:
    """The intact groups that hold exactly the parameters of ``leaves``, or None."""
    groups, wanted = [], 0
    for layer in leaves:
        if not layer.params:
            continue
        group = vars(layer).get("_flat_group")
        if group is None:
            return None
        wanted += len(layer.params)
        if group not in groups:
            groups.append(group)
    # every leaf's group holds it; equal counts then mean no group holds anything else
    if sum(len(g.members) for g in groups) != wanted or not all(g.intact() for g in groups):
        return None
    return groups


def flatten(layers) -> list | None:
    """The flat groups of ``layers``' parameters, built (values copied, the layers' dicts
    re-pointed to views) unless the current ones already cover exactly these layers.
    None if some layer cannot be flattened (callers then work array by array)."""
    leaves = leaf_layers(layers)
    if not leaves:
        return None
    groups = current_groups(leaves)
    if groups is not None:
        return groups
    arrays = [id(p) for layer in leaves for p in layer.params.values()]
    if len(set(arrays)) != len(arrays):      # one array in two places (tied weights): a
        return None                          # buffer would untie them; keep them as they are
    by_kind: dict = {}
    for layer in leaves:
        for name, p in layer.params.items():
            key = (id(layer.backend), layer.backend.dtype_name(p.dtype))
            by_kind.setdefault(key, []).append((layer, name, p, layer.grads[name]))
    groups = []
    for entries in by_kind.values():
        backend, dtype = entries[0][0].backend, entries[0][2].dtype
        total = sum(int(p.size) for _, _, p, _ in entries)
        group = FlatGroup(backend, backend.empty((total,), dtype), backend.empty((total,), dtype))
        offset = 0
        for layer, name, p, g in entries:
            size, shape = int(p.size), tuple(p.shape)
            views = []
            for flat, value in ((group.params, p), (group.grads, g)):
                flat[offset:offset + size] = backend.xp.reshape(value, (size,))
                views.append(backend.xp.reshape(flat[offset:offset + size], shape))
            layer.params[name], layer.grads[name] = views
            group.members.append((layer, name, offset, *views))
            offset += size
        groups.append(group)
    for group in groups:
        for layer, *_ in group.members:
            layer._flat_group = group
    return groups


def zero_grad_flat(layers) -> bool:
    """Zero the gradients of ``layers`` with one fill per flat group, if their current groups
    hold exactly their parameters; returns whether it did (else the caller zeroes each)."""
    leaves = leaf_layers(layers)
    groups = None if not leaves else current_groups(leaves)
    if groups is None:
        return False
    for group in groups:
        group.grads[...] = 0
    return True
