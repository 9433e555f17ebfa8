"""The backend object: an array module plus the few hot primitives of an LSTM.

Model code (``lstm_xp``) is written once against ``backend.xp`` using only names that
NumPy 2, CuPy 14 and the Python array API standard share, and calls the methods below
for array creation, host/device transfer and the per-step hot path. The methods here
are the *generic* versions, plain ``xp`` code; a backend may override any of them with a
faster one (in-place ufuncs on NumPy, fused kernels on CuPy), and the tests compare
every override with the generic version.
"""

from __future__ import annotations

import weakref

import numpy as np

FLOAT_DTYPES = ("float32", "float64")

# every backend object made so far, so that manual_seed reaches each one's generator
_ALL_BACKENDS: weakref.WeakSet = weakref.WeakSet()
_SEED = [None]
# the stream layers built with seed=None draw their initial parameters from
_PARAMETER_RNG = [np.random.default_rng()]


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int, or ValueError unless it is an integer >= 0 (not a bool, a float
    or an array)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {seed!r}")
    return int(seed)


def manual_seed(seed) -> None:
    """Seed every random draw lstm-xp makes, as ``torch.manual_seed``: the generator of every
    backend, present and future (dropout masks), and the stream that layers built with
    ``seed=None`` draw their initial parameters from (:func:`parameter_generator`)."""
    seed = check_seed(seed)
    _SEED[0] = seed
    # a child stream of the same seed: initialisations and masks do not share draws
    _PARAMETER_RNG[0] = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    for backend in list(_ALL_BACKENDS):
        backend.manual_seed(seed)


def parameter_generator(seed=None) -> np.random.Generator:
    """The host generator a layer draws its initial parameters from.

    An explicit ``seed`` (an integer >= 0, or a NumPy SeedSequence) gets a generator of its
    own, so the layer's parameters depend on that seed alone; a NumPy Generator is drawn from
    as it is. ``seed=None`` gets the process's shared stream:
    fresh entropy until :func:`manual_seed` restarts it, so that a script calling
    ``manual_seed(0)`` once builds the same layers in every run (each layer takes the next
    draws, as in torch).
    """
    if seed is None:
        return _PARAMETER_RNG[0]
    if isinstance(seed, np.random.Generator):       # the caller's own stream, used as is
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(check_seed(seed))


class BackendUnavailableError(RuntimeError):
    """A device was asked for that this machine cannot provide (the message says why)."""


def _sigmoid(xp, a):
    """Logistic function in a form that cannot overflow: sigma(a) = (1 + tanh(a/2)) / 2."""
    return 0.5 * xp.tanh(0.5 * a) + 0.5


class Backend:
    """Array module ``xp`` on one device, with generic (plain ``xp``) hot primitives.

    Attributes:
        name: the device name users pass (``"cpu"``, ``"gpu"``, ...).
        xp: the array namespace (``numpy``, ``cupy``, an array API namespace).
        device: the ``device=`` argument given to ``xp`` creation functions, or None.
    """

    def __init__(self, name: str, xp, device=None):
        self.name = name
        self.xp = xp
        self.device = device
        self.manual_seed(_SEED[0])
        _ALL_BACKENDS.add(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # ----------------------------------------------------------- dtypes and arrays
    def dtype(self, dtype):
        """The ``xp`` dtype for ``"float32"``/``"float64"`` (or a NumPy/xp dtype of that name)."""
        name = dtype
        if isinstance(dtype, (np.dtype, type)):          # np.float32, np.dtype("f4"), float
            try:
                name = np.dtype(dtype).name
            except TypeError:
                name = self.dtype_name(dtype)
        elif dtype is not None and not isinstance(dtype, str):
            # another library's dtype object (array_api_strict's); never an array or number
            name = self.dtype_name(dtype) if type(dtype).__module__ != "numpy" else None
        if name not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        return getattr(self.xp, name)

    def dtype_name(self, dtype) -> str:
        """The plain name (``"float32"``) of an ``xp`` dtype, or ``str(dtype)`` if unnamed."""
        for name in ("float16", "float32", "float64", "int32", "int64", "bool"):
            if dtype == getattr(self.xp, name, None):
                return name
        return str(dtype)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype, **self._on_device())

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype, **self._on_device())

    def arange(self, n: int, dtype=None):
        return self.xp.arange(n, dtype=dtype, **self._on_device())

    def asarray(self, a, dtype=None, copy=None):
        """``a`` (host array, nested list or an array of this backend) as an array here."""
        return self.xp.asarray(a, dtype=dtype, copy=copy, **self._on_device())

    def to_numpy(self, a) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of an array of this backend."""
        return np.asarray(a)

    def owns(self, a) -> bool:
        """Whether ``a`` is an array of this backend, on its device."""
        return (type(a).__module__.split(".")[0] == self.xp.__name__.split(".")[0]
                and (self.device is None or getattr(a, "device", None) == self.device))

    def synchronize(self) -> None:
        """Wait until queued device work is done (a no-op on the CPU)."""

    def describe(self) -> dict:
        """Library versions (and device name) for run records."""
        return {self.xp.__name__: getattr(self.xp, "__version__", "unknown")}

    def _on_device(self) -> dict:
        return {} if self.device is None else {"device": self.device}

    # ------------------------------------------------------------------ GEMM precision
    @property
    def allow_tf32(self) -> bool:
        """Whether float32 GEMMs may round their inputs to TF32 (a 10-bit mantissa) on tensor
        cores, as ``torch.backends.cuda.matmul.allow_tf32``. Off by default; only the GPU
        backend has the mode, and setting True elsewhere raises ValueError."""
        return False

    @allow_tf32.setter
    def allow_tf32(self, on) -> None:
        if not isinstance(on, (bool, np.bool_)):
            raise TypeError(f"allow_tf32 must be True or False, got {on!r}")
        if on:
            raise ValueError(f"allow_tf32: TF32 is a cuBLAS math mode of the gpu backend; the "
                             f"{self.name} backend computes float32 GEMMs in float32")

    # ------------------------------------------------------------------ randomness
    def manual_seed(self, seed) -> None:
        """Restart this backend's generator from ``seed`` (None: fresh entropy)."""
        self.random = np.random.default_rng(seed)

    def generator_state(self):
        """The generator's state as plain data (for checkpoints), or None if it cannot be
        saved."""
        return self.random.bit_generator.state

    def set_generator_state(self, state) -> None:
        """Restore a :meth:`generator_state` (None: leave the generator as it is)."""
        if state is not None:
            self.random.bit_generator.state = state

    def dropout_mask(self, shape, p: float, dtype):
        """An inverted-dropout mask: each entry 0 with probability ``p``, else 1 / (1 - p)
        (so the expectation of ``mask * x`` is x); all zeros for p = 1.

        Drawn from this backend's generator as float64 uniforms u, entry kept where u >= p:
        a given seed gives the same mask in float32 and float64. Generic: drawn on the host
        and moved to the device.
        """
        if p >= 1:
            return self.zeros(shape, dtype)
        keep = self.random.random(shape) >= p
        return self.asarray(keep * (1.0 / (1.0 - p)), dtype=dtype)

    # ------------------------------------------------------------ collectives
    def allreduce_sum(self, flat, comm, MPI):
        """The elementwise sum of the 1-D array ``flat`` over the ranks of the mpi4py
        communicator ``comm`` (one collective call). Generic: through a host copy."""
        host = np.array(self.to_numpy(flat), copy=True)
        comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
        return self.asarray(host, dtype=flat.dtype)

    # ----------------------------------------------------------- sparse updates
    def index_add(self, target, index, values) -> None:
        """target[index[n], :] += values[n, :] for every n; repeated indices add up.

        Shapes: target (V, E); index (N,) integers in [0, V); values (N, E). Generic: as a
        product with a one-hot (N, V) matrix (memory N*V; the backends override it).
        """
        xp = self.xp
        one_hot = xp.astype(xp.reshape(index, (-1, 1)) == self.arange(target.shape[0],
                                                                       dtype=index.dtype),
                            target.dtype)
        self.matmul_acc(xp.permute_dims(one_hot, (1, 0)), values, out=target)

    # ------------------------------------------------------------ optimizer steps
    # One call updates a whole flat parameter buffer (lstm_xp.flat): the same number of
    # operations (GPU launches) per step however many parameter arrays a model has.
    def sgd_update(self, p, g, velocity, lr: float, momentum: float, weight_decay: float,
                   nesterov: bool) -> None:
        """One step of torch.optim.SGD (dampening 0), in place on ``p`` and ``velocity``.

        Shapes: p, g, velocity alike (velocity None when momentum is 0).

            g' = g + weight_decay * p
            v <- momentum * v + g'                 (v = 0 before the first step)
            d  = g' + momentum * v  if nesterov  else  v      (d = g' without momentum)
            p <- p - lr * d
        """
        if weight_decay:
            g = g + weight_decay * p
        if velocity is not None:
            velocity *= momentum
            velocity += g
            g = g + momentum * velocity if nesterov else velocity
        p -= lr * g

    def adam_update(self, p, g, m, v, step: int, lr: float, b1: float, b2: float, eps: float,
                    weight_decay: float, decoupled: bool) -> None:
        """One step of torch.optim.Adam (``decoupled``: AdamW), in place on ``p``, ``m``, ``v``.

        Shapes: p, g, m, v alike; ``step`` t = 1, 2, ... counts steps.

            p <- p * (1 - lr * weight_decay)     if decoupled,   else  g' = g + weight_decay * p
            m <- b1 m + (1 - b1) g'              v <- b2 v + (1 - b2) g'^2
            p <- p - (lr / (1 - b1^t)) m / (sqrt(v / (1 - b2^t)) + eps)
        """
        xp = self.xp
        if weight_decay and decoupled:
            p *= 1.0 - lr * weight_decay
        elif weight_decay:
            g = g + weight_decay * p
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        m_hat, v_hat = 1.0 / (1.0 - b1 ** step), 1.0 / (1.0 - b2 ** step)
        p -= (lr * m_hat) * m / (xp.sqrt(v * v_hat) + eps)

    # ----------------------------------------------------------- hot primitives
    def transposed_operand(self, w):
        """w.T, laid out for many products a @ w.T (the per-step recurrent GEMM, made once
        per sequence). Generic: the transposed view."""
        return w.T

    def matmul_into(self, a, b, out) -> None:
        """out[...] = a @ b for 2-D operands (transposed views allowed)."""
        out[...] = self.xp.matmul(a, b)

    def matmul_acc(self, a, b, out) -> None:
        """out[...] += a @ b for 2-D operands (transposed views allowed)."""
        out[...] += self.xp.matmul(a, b)

    def keep_where(self, dst, src, hold) -> None:
        """dst[...] = where(hold, src, dst): entries of ``dst`` flagged in ``hold`` take ``src``.

        Exact (a select, no arithmetic). Shapes: dst, src (B, H); hold (B, 1) bool, which
        broadcasts over the row.
        """
        dst[...] = self.xp.where(hold, src, dst)

    def lstm_cell_forward(self, gates, c_prev, c, h, h_prev=None, hold=None) -> None:
        """One LSTM step once the gate pre-activations are summed.

        Shapes: gates (B, 4H), c_prev, c, h, h_prev (B, H); hold (B, 1) bool or None; rows
        of ``gates`` in PyTorch's order.

            i = sigma(a_i)   f = sigma(a_f)   g = tanh(a_g)   o = sigma(a_o)
            c = f * c_prev + i * g
            h = o * tanh(c)
            c = c_prev, h = h_prev      on the rows where hold (a padded step: exact copies)

        In place: ``gates`` holds the pre-activations [a_i a_f a_g a_o] on entry and the
        activations [i f g o] on return (what backward needs); ``c`` and ``h`` are written.
        ``h_prev`` is read only with ``hold``. Callers check dtypes and shapes once per
        sequence (lstm_xp.bptt); the primitives trust them.
        """
        xp = self.xp
        H = c_prev.shape[-1]
        i = _sigmoid(xp, gates[:, 0:H])
        f = _sigmoid(xp, gates[:, H:2 * H])
        g = xp.tanh(gates[:, 2 * H:3 * H])
        o = _sigmoid(xp, gates[:, 3 * H:4 * H])
        c_new = f * c_prev + i * g
        h_new = o * xp.tanh(c_new)
        if hold is None:
            c[...], h[...] = c_new, h_new
        else:
            c[...] = xp.where(hold, c_prev, c_new)
            h[...] = xp.where(hold, h_prev, h_new)
        gates[:, 0:H] = i
        gates[:, H:2 * H] = f
        gates[:, 2 * H:3 * H] = g
        gates[:, 3 * H:4 * H] = o

    def lstm_forward_steps(self, gates, h, c, w_hh_t, hold, reverse: bool,
                           keep_activations: bool = True) -> None:
        """The recurrence of one direction without projection, every step in visiting order.

        Shapes: gates (T, B, 4H) holding x_t W_ih^T + b on entry; h, c (T+1, B, H) state
        slots (lstm_xp.bptt: step t reads slot t and writes t+1 forward, reads t+1 and
        writes t reverse), the initial state already in its slot; w_hh_t (H, 4H) from
        :meth:`transposed_operand`; hold (T, B, 1) bool or None. Per step:

            a_t += h_prev W_hh^T,   then :meth:`lstm_cell_forward` (activations left in a_t)

        This version makes those two calls per step; a backend may run the loop at once.
        ``keep_activations=False`` (an eval forward, which keeps no tape) lets a backend
        leave in ``gates`` whatever is cheapest instead of the activations; this one keeps
        them anyway, in place.
        """
        T = gates.shape[0]
        prev, cur = (1, 0) if reverse else (0, 1)
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            gates_t, h_prev = gates[t, ...], h[t + prev, ...]
            self.matmul_acc(h_prev, w_hh_t, out=gates_t)
            self.lstm_cell_forward(gates_t, c[t + prev, ...], c[t + cur, ...], h[t + cur, ...],
                                   h_prev, None if hold is None else hold[t, ...])

    # Backward of a step splits in two. Its local derivatives depend on forward values
    # only, so they are computed for a block of steps at once, off the sequential path:
    #     alpha = o (1 - tanh(c)^2)                         (dh -> dc_t)
    #     k_i = g i (1 - i)      k_f = c_prev f (1 - f)      (dc_t -> da_i, da_f)
    #     k_g = i (1 - g^2)      k_o = tanh(c) o (1 - o)     (dc_t -> da_g, dh -> da_o)
    # and f (dc_t -> dc_prev). What must run step by step is then one multiply-add and four
    # products (lstm_cell_backward_step).
    backward_block_bytes = 1 << 18

    def backward_block_steps(self, T: int, B: int, H: int, itemsize: int) -> int:
        """How many steps :meth:`lstm_backward_factors` covers per call: enough for about
        ``backward_block_bytes`` of gate rows (cache-sized on the CPU), between 1 and T."""
        return max(1, min(T, self.backward_block_bytes // (B * 4 * H * itemsize)))

    def lstm_backward_factors(self, gates, c_prev, c, alpha, f_keep, hold=None) -> None:
        """The local derivatives of a block of S steps, which backward multiplies by.

        Shapes: gates (S, B, 4H); c_prev, c, alpha, f_keep (S, B, H) (any leading dims);
        hold (S, B, 1) bool or None.

            alpha = o * (1 - tanh(c)^2)          f_keep = f
            k_i = g * i * (1 - i)                k_f = c_prev * f * (1 - f)
            k_g = i * (1 - g^2)                  k_o = tanh(c) * o * (1 - o)
            alpha = 0, k = 0, f_keep = 1         where hold (a padded step passes dc on)

        In place: ``gates`` holds the activations [i f g o] on entry and the factors
        [k_i k_f k_g k_o] on return; ``alpha`` and ``f_keep`` are written.
        """
        xp = self.xp
        H = c.shape[-1]
        i, f = gates[..., 0:H], gates[..., H:2 * H]
        g, o = gates[..., 2 * H:3 * H], gates[..., 3 * H:4 * H]
        tanh_c = xp.tanh(c)
        alpha_new = o * (1.0 - tanh_c * tanh_c)
        f_new = f
        k = [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g),
             tanh_c * o * (1.0 - o)]
        if hold is not None:
            alpha_new, f_new = xp.where(hold, 0.0, alpha_new), xp.where(hold, 1.0, f)
            k = [xp.where(hold, 0.0, k_gate) for k_gate in k]
        alpha[...] = alpha_new
        f_keep[...] = f_new          # before the gates' f slot is overwritten by k_f
        for slot, k_gate in enumerate(k):
            gates[..., slot * H:(slot + 1) * H] = k_gate

    def lstm_backward_steps(self, factors, alpha, f_keep, dh, dc, w_hh, dy, hold,
                            reverse: bool) -> None:
        """The steps of one block of backward (without projection), in backward's order:
        s = S-1 ... 0, or 0 ... S-1 for a reverse direction.

        Shapes: factors (S, B, 4H) from :meth:`lstm_backward_factors`, pre-activation
        gradients on return; alpha, f_keep (S, B, H); dh, dc (B, H) C-contiguous, carried
        from step to step; w_hh (4H, H); dy (S, B, H) (unit stride along H) or None; hold
        (S, B, 1) bool or None. Per step: :meth:`lstm_cell_backward_step`, then
        dh <- da W_hh (added to the dh_t the cell leaves on held rows).

        This version makes those two calls per step; a backend may run the block at once.
        """
        steps = range(factors.shape[0])
        for s in (steps if reverse else reversed(steps)):
            held = None if hold is None else hold[s, ...]
            self.lstm_cell_backward_step(factors[s, ...], alpha[s, ...], f_keep[s, ...], dh, dc,
                                         None if dy is None else dy[s, ...], held)
            (self.matmul_into if held is None else self.matmul_acc)(factors[s, ...], w_hh,
                                                                   out=dh)

    def lstm_cell_backward_step(self, factors, alpha, f, dh, dc, dy=None, hold=None) -> None:
        """Gradients of one LSTM step, the reverse of :meth:`lstm_cell_forward`.

        Shapes: factors (B, 4H) from :meth:`lstm_backward_factors`; alpha, f, dh, dc, dy
        (B, H) (dy any strides, or None for zeros); hold (B, 1) bool or None. ``dh`` is
        dL/dh_t through the next step and ``dy`` through the output; ``dc`` is dL/dc_t
        through c_{t+1} on entry and dL/dc_{t-1} on return.

            dh_t = dh + dy
            dc_t = dc + dh_t * alpha                      [= dc + dh_t * o * (1 - tanh(c)^2)]
            da_i = dc_t * k_i    da_f = dc_t * k_f    da_g = dc_t * k_g    da_o = dh_t * k_o
            dc_prev = dc_t * f

        In place: ``factors`` holds [k_i k_f k_g k_o] on entry and the pre-activation
        gradients [da_i da_f da_g da_o] on return. ``dh`` holds dh_t on return; with
        ``hold``, dh_t on the held rows and 0 on the others, so that adding da W_hh (zero on
        held rows, whose factors are zero) gives dL/dh_{t-1} on every row.
        """
        xp = self.xp
        H = dc.shape[-1]
        dh_t = dh if dy is None else dh + dy
        dc_t = dc + dh_t * alpha
        factors[:, 0:H] = factors[:, 0:H] * dc_t
        factors[:, H:2 * H] = factors[:, H:2 * H] * dc_t
        factors[:, 2 * H:3 * H] = factors[:, 2 * H:3 * H] * dc_t
        factors[:, 3 * H:4 * H] = factors[:, 3 * H:4 * H] * dh_t
        dc[...] = dc_t * f
        dh[...] = dh_t if hold is None else xp.where(hold, dh_t, 0.0)
