"""Layers around the LSTM: Linear, Embedding, Dropout (the module contract of module.py)."""

from __future__ import annotations

import math

import numpy as np

from backends import parameter_generator

from .arrays import (as_input, check_finite, check_shape, flag, host_array, positive_int,
                     probability, python_numbers, c_contiguous)
from .module import Module


class Linear(Module):
    """Affine map over the last axis:  y = x W^T + b.

    Args:
        in_features: F_in.  out_features: F_out.
        bias: learn b (else b = 0 and there is no "bias" parameter).
        dtype, device, seed: as for :class:`lstm_xp.LSTM` (seed None: the stream that
            ``lstm_xp.manual_seed`` seeds).

    Parameters (PyTorch's names): ``weight`` (F_out, F_in), ``bias`` (F_out,), both
    initialised ~ U(-1/sqrt(F_in), 1/sqrt(F_in)) as ``torch.nn.Linear``.

    Shapes: x (..., F_in) -> y (..., F_out).  Backward, with N = prod(leading axes), adds
        dW += dy^T x  (summed over the N rows)    db += sum of dy over rows
    and returns dx = dy W.
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype="float32", device="cpu",
                 seed=None):
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        super().__init__(device, dtype)
        rng = parameter_generator(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        host = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features))}
        if flag("bias", bias):
            host["bias"] = rng.uniform(-bound, bound, self.out_features)
        self._init_params(host)

    def __repr__(self) -> str:
        return (f"Linear({self.in_features}, {self.out_features}, bias={'bias' in self.params}, "
                f"dtype={self.dtype_name!r}, device={self.device!r})")

    def forward(self, x, *, train=None, return_tape: bool = False):
        """x (..., F_in) -> y (..., F_out); a training-mode call keeps x for backward."""
        xp = self.backend.xp
        training = self._training_call(train)
        x = as_input(self.backend, x, "x", self.dtype, copy=training)
        if len(x.shape) == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features (in_features) in its "
                             f"last axis, got shape {tuple(x.shape)}")
        check_finite(self.backend, {"x": x})
        lead = tuple(x.shape[:-1])
        x2 = c_contiguous(self.backend, xp.reshape(x, (-1, self.in_features)))
        y = xp.matmul(x2, self.params["weight"].T)
        if "bias" in self.params:
            y += self.params["bias"]
        y = xp.reshape(y, lead + (self.out_features,))
        tape = self._keep((x2, lead)) if training else None
        return (y, tape) if return_tape else y

    __call__ = forward

    def backward(self, dy, *, tape=None):
        """dy (..., F_out) -> dx (..., F_in); adds to ``grads``; uses up the tape."""
        xp = self.backend.xp
        kept = self._find_tape(tape)
        x2, lead = kept.data
        dy = as_input(self.backend, dy, "dy", self.dtype)
        want = lead + (self.out_features,)
        if tuple(dy.shape) != want:
            raise ValueError(f"dy must have the shape of the last output {want}, "
                             f"got {tuple(dy.shape)}")
        check_finite(self.backend, {"dy": dy})
        self._consume(kept)
        dy2 = c_contiguous(self.backend, xp.reshape(dy, (-1, self.out_features)))
        self.backend.matmul_acc(dy2.T, x2, out=self.grads["weight"])
        if "bias" in self.params:
            self.grads["bias"] += xp.sum(dy2, axis=0)
        dx = xp.matmul(dy2, self.params["weight"])
        return xp.reshape(dx, lead + (self.in_features,))


class Embedding(Module):
    """A lookup table: integer ids -> rows of ``weight``.

        y[..., :] = weight[ids[...], :]          weight (V, E) ~ N(0, 1), as torch.nn.Embedding

    Args:
        num_embeddings: V, the number of ids.  embedding_dim: E.
        dtype, device, seed: as for :class:`lstm_xp.LSTM`.

    Shapes: ids (...) of any integer dtype, values in [0, V) -> y (..., E). Backward adds the
    dense gradient dW[v] += sum of dy over the positions whose id is v (repeated ids sum).
    """

    def __init__(self, num_embeddings, embedding_dim, *, dtype="float32", device="cpu",
                 seed=None):
        self.num_embeddings = positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        super().__init__(device, dtype)
        rng = parameter_generator(seed)
        self._init_params({"weight": rng.standard_normal((self.num_embeddings,
                                                          self.embedding_dim))})

    def __repr__(self) -> str:
        return (f"Embedding({self.num_embeddings}, {self.embedding_dim}, "
                f"dtype={self.dtype_name!r}, device={self.device!r})")

    def _ids(self, ids):
        """``ids`` as a flat device array of int64 and its shape, after checking them."""
        backend, V = self.backend, self.num_embeddings
        if not backend.owns(ids):
            if isinstance(ids, (list, tuple, int)) and not isinstance(ids, bool):
                host = python_numbers(ids, "ids")
            else:
                host = host_array(ids) if not isinstance(ids, (str, bytes)) else None
            if host is None:
                raise TypeError(f"ids must be an array of integers, got "
                                f"{type(ids).__module__}.{type(ids).__name__}")
            ids = backend.asarray(host)
        kind = backend.dtype_name(ids.dtype)
        if kind == "bool" or not (kind.startswith("int") or kind.startswith("uint")):
            raise TypeError(f"ids must hold integers, got dtype {kind}")
        xp = backend.xp
        flat = xp.astype(xp.reshape(ids, (-1,)), xp.int64)
        if flat.shape[0]:
            low, high = (int(v) for v in backend.to_numpy(xp.stack([xp.min(flat), xp.max(flat)])))
            if low < 0 or high >= V:
                raise ValueError(f"ids must be in [0, {V}) (num_embeddings), got values "
                                 f"from {low} to {high}")
        return flat, tuple(ids.shape)

    def forward(self, ids, *, train=None, return_tape: bool = False):
        """ids (...) -> y (..., E)."""
        xp = self.backend.xp
        flat, shape = self._ids(ids)
        y = xp.reshape(xp.take(self.params["weight"], flat, axis=0),
                       shape + (self.embedding_dim,))
        tape = self._keep((flat, shape)) if self._training_call(train) else None
        return (y, tape) if return_tape else y

    __call__ = forward

    def backward(self, dy, *, tape=None) -> None:
        """Adds dL/dweight to ``grads["weight"]`` (ids have no gradient); uses up the tape."""
        kept = self._find_tape(tape)
        flat, shape = kept.data
        dy = as_input(self.backend, dy, "dy", self.dtype)
        check_shape("dy", dy, shape + (self.embedding_dim,), "(the ids' shape + (embedding_dim,))")
        check_finite(self.backend, {"dy": dy})
        self._consume(kept)
        self.backend.index_add(self.grads["weight"], flat,
                               self.backend.xp.reshape(dy, (-1, self.embedding_dim)))


class Dropout(Module):
    """Inverted dropout: in training mode y = x * mask, each mask entry 0 with probability
    p and 1 / (1 - p) otherwise (drawn from the backend's generator, ``lstm_xp.manual_seed``);
    in eval mode y = x. p = 1 zeroes everything, as torch.nn.Dropout. No parameters.

    As torch.nn.Dropout, the layer has no dtype of its own: y has x's dtype (float32 or
    float64). ``dtype="float32"`` (or "float64") instead makes it refuse inputs of the other.

    Shapes: x (...) -> y (...); backward(dy) -> dx = dy * mask (the same mask), dy of x's
    shape and dtype.
    """

    dtype_free = True

    def __init__(self, p=0.5, *, dtype=None, device="cpu"):
        self.p = probability("p", p)
        super().__init__(device, dtype)

    def __repr__(self) -> str:
        dtype = "" if self.dtype is None else f", dtype={self.dtype_name!r}"
        return f"Dropout(p={self.p}{dtype}, device={self.device!r})"

    def forward(self, x, *, train=None, return_tape: bool = False):
        x = as_input(self.backend, x, "x", self.dtype)
        if not self._training_call(train):
            return (x, None) if return_tape else x
        if self.p == 0:                   # nothing to drop: no mask drawn
            tape = self._keep((tuple(x.shape), x.dtype))
            return (x, tape) if return_tape else x
        mask = self.backend.dropout_mask(tuple(x.shape), self.p, x.dtype)
        tape = self._keep(mask)
        return (x * mask, tape) if return_tape else x * mask

    __call__ = forward

    def backward(self, dy, *, tape=None):
        kept = self._find_tape(tape)
        mask = kept.data
        shape, dtype = mask if isinstance(mask, tuple) else (tuple(mask.shape), mask.dtype)
        dy = as_input(self.backend, dy, "dy", dtype, owner="the last input x")
        check_shape("dy", dy, shape, "(the shape of the last input)")
        self._consume(kept)
        return dy if isinstance(mask, tuple) else dy * mask


class MonotoneQuantiles(Module):
    """Unconstrained scores -> quantiles that cannot cross: the first is the lowest, each
    next one adds a positive step.

        q_1 = z_1        q_k = q_{k-1} + softplus(z_k)   (k = 2..Q)
        softplus(z) = log(1 + e^z) > 0, written max(z, 0) + log1p(e^-|z|) so that it
        cannot overflow

    Backward, with g = dL/dq and S_k = g_k + ... + g_Q (the sum of g from k on):
        dL/dz_1 = S_1        dL/dz_k = sigmoid(z_k) S_k   (k >= 2)

    No parameters; like Dropout it has no dtype of its own (y has x's). Shapes: z (..., Q)
    -> q (..., Q), strictly increasing along the last axis.
    """

    dtype_free = True

    def __init__(self, *, dtype=None, device="cpu"):
        super().__init__(device, dtype)
        self._ones = (None, None)        # (key, U) of _sums: made once, not every call

    def __repr__(self) -> str:
        return f"MonotoneQuantiles(device={self.device!r})"

    def forward(self, z, *, train=None, return_tape: bool = False):
        xp = self.backend.xp
        z = as_input(self.backend, z, "z", self.dtype)
        if len(z.shape) == 0 or z.shape[-1] < 1:
            raise ValueError(f"z must hold the quantile scores in its last axis, got shape "
                             f"{tuple(z.shape)}")
        steps = xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
        steps[..., 0] = z[..., 0]
        q = xp.matmul(steps, self._sums(z.shape[-1], z.dtype))        # running sums
        tape = self._keep(z) if self._training_call(train) else None
        return (q, tape) if return_tape else q

    __call__ = forward

    def _sums(self, Q: int, dtype):
        """(Q, Q) upper-triangular ones U: steps @ U are the running sums, dq @ U^T the
        sums from k on (a product, which every array module has, where cumsum is not in
        the array API). Kept per (device, Q, dtype): no host-to-device copy per call."""
        key = (self.backend.name, Q, str(dtype))
        if self._ones[0] != key:
            self._ones = (key, self.backend.asarray(np.triu(np.ones((Q, Q))), dtype))
        return self._ones[1]

    def backward(self, dq, *, tape=None):
        xp = self.backend.xp
        kept = self._find_tape(tape)
        z = kept.data
        dq = as_input(self.backend, dq, "dq", z.dtype, owner="the last input z")
        check_shape("dq", dq, tuple(z.shape), "(the shape of the last input)")
        self._consume(kept)
        tail_sums = xp.matmul(dq, self._sums(z.shape[-1], z.dtype).T)     # S_k
        slope = 0.5 + 0.5 * xp.tanh(0.5 * z)      # sigmoid(z) = softplus'(z), no overflow
        slope[..., 0] = 1.0
        return tail_sums * slope
