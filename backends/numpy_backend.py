"""NumPy backend: the generic equations as in-place ufuncs on preallocated buffers.

Each primitive does the same math as its generic version in ``backends/base.py`` but
writes every intermediate into a workspace kept between calls (``out=``), so the time
loop allocates nothing in steady state and makes as few passes over memory as it can.
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import Backend

_MAX_CACHED = 64      # scratch arrays / gate-constant sets kept between calls, at most
_NO_HOLD = np.zeros((0, 0, 1), dtype=bool)     # the compiled loops' "no padded steps"


def compiled_loops():
    """The module backends.numba_steps, or None where numba (the ``jit`` extra) is not
    installed or fails to load (then with one warning saying why: the NumPy loop runs, as
    correct and slower). Imported on first use: numba takes about a second."""
    global _compiled
    if _compiled is False:
        try:
            from . import numba_steps
        except ImportError:
            numba_steps = None
        except Exception as err:       # numba is there but broken: say so once, carry on
            warnings.warn(f"lstm-xp: numba is installed but its compiled time loops failed to "
                          f"load ({type(err).__name__}: {err}); the NumPy loop runs instead",
                          RuntimeWarning, stacklevel=2)
            numba_steps = None
        _compiled = numba_steps
    return _compiled


_compiled = False          # not looked for yet


def numpy_dispatches_avx512() -> bool:
    """Whether NumPy's SIMD ufunc loops run their AVX-512 (Skylake-X) versions here."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:          # a NumPy without this (private) table: assume not
        return False
    return bool(__cpu_features__.get("AVX512_SKX"))


def default_exp_form_sizes() -> dict:
    """NumpyBackend.exp_form_min_size for this machine (see the comment on the forms)."""
    if numpy_dispatches_avx512():
        return {"float32": float("inf"), "float64": float("inf")}
    return dict(NumpyBackend.EXP_FORM_MIN_SIZE)


class NumpyBackend(Backend):
    """CPU backend, ``xp = numpy``."""

    def __init__(self):
        super().__init__("cpu", np)
        self._workspaces: dict = {}
        self._gate_affine: dict = {}
        self.exp_form_min_size = default_exp_form_sizes()
        self.jit_max_units = self.JIT_MAX_UNITS

    def asarray(self, a, dtype=None, copy=None):
        return np.asarray(a, dtype=dtype, copy=copy)

    def owns(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def _workspace(self, slot: str, shape: tuple, dtype) -> np.ndarray:
        """A scratch array kept between calls, one per (slot, shape, dtype).

        Only used inside one primitive call, so the cache may be dropped between calls: it
        is, once it holds _MAX_CACHED arrays (a process that sees many batch sizes would
        otherwise keep one set per size).
        """
        key = (slot, shape, dtype)
        buf = self._workspaces.get(key)
        if buf is None:
            if len(self._workspaces) >= _MAX_CACHED:
                self._workspaces.clear()
            buf = self._workspaces[key] = np.empty(shape, dtype=dtype)
        return buf

    # Gate activations [a_i a_f a_g a_o] -> [i f g o], in one of two forms that are equal
    # in exact arithmetic; with s, m, u full (B, 4H) arrays, constant over each gate:
    #   tanh form:  act = s tanh(s a) + u      s = 1/2, u = 1/2 on i f o;  s = 1, u = 0 on g
    #               (sigma(a) = tanh(a/2)/2 + 1/2), 4 passes;
    #   exp form:   act = m / (1 + exp(s a)) + u
    #               s = -1, m = 1, u = 0 on i f o;  s = -2, m = 2, u = -1 on g
    #               (tanh(a) = 2 sigma(2a) - 1), 5 passes.
    # NumPy's exp is about twice as fast as its tanh per value, so the exp form is faster
    # on large arrays (0.7-0.8x the cell's time at B*4H >= 8192 in float32, 0.6-0.7x in
    # float64); on small ones its fixed costs win (one more call, and an errstate of 1.5-3 us
    # that keeps exp's overflow to inf, the exact limit, from warning). Which form runs
    # depends on the dtype and the gates' size B*4H only, never on the values; a sample's
    # bits can therefore differ slightly between batch sizes.
    # Accuracy: both are within about 1.5 ulp of 1.0 (absolute) of the exact activations.
    # The exp form's sigmoids are also accurate relative to their size (down to subnormal
    # values; the tanh form's bottom out near 1e-8 in float32), while its g = 2 sigma(2a) - 1
    # loses relative accuracy for |g| << 1 (absolute error still ~eps). Both are covered by
    # the gradient and PyTorch checks (tests/cases.numpy_backend forces either form).
    # Gate entries (B * 4H) from which the exp form is used (an instance's own copy in
    # ``exp_form_min_size``): which form is faster depends on the CPU, so the default is
    # chosen per machine, never per run (both forms' bits differ, and a run resumed in a new
    # process must compute what an uninterrupted one does). Measured (BENCHMARKS.md,
    # "Decisions"): where NumPy's ufuncs dispatch AVX-512 (an Intel Xeon) the tanh form is
    # faster at every size in float32 and even in float64, so it is used throughout; on an
    # AVX2 AMD EPYC the exp form won from about 3,000 (float32) and 500 (float64) entries.
    EXP_FORM_MIN_SIZE = {"float32": 4096, "float64": 1024}     # where AVX-512 is not used

    # each form's constants: (value on i f o, value on g)
    _gate_forms = {"tanh": {"s": (0.5, 1.0), "u": (0.5, 0.0)},
                   "exp": {"s": (-1.0, -2.0), "m": (1.0, 2.0), "u": (0.0, -1.0)}}

    def _gate_constants(self, form: str, shape: tuple, dtype) -> tuple:
        """The constants of ``form`` above ((s, u) or (s, m, u)), each of the gates' shape
        (B, 4H). Full arrays rather than (4H,) rows: NumPy's broadcasting loop is about 2x
        slower than the same-shape one here."""
        key = (form, shape, dtype)
        constants = self._gate_affine.get(key)
        if constants is None:
            if len(self._gate_affine) >= _MAX_CACHED:
                self._gate_affine.clear()
            H = shape[-1] // 4
            arrays = []
            for on_sigmoid, on_tanh in self._gate_forms[form].values():
                k = np.full(shape, on_sigmoid, dtype=dtype)
                k[..., 2 * H:3 * H] = on_tanh
                arrays.append(k)
            constants = self._gate_affine[key] = tuple(arrays)
        return constants

    def _activate_gates(self, gates) -> None:
        """In place: pre-activations (B, 4H) -> activations [i f g o], in the form above."""
        # the dtype's name from its scalar type: NumPy computes ``dtype.name`` in Python
        # (about 5 us, a quarter of a whole step at the seed shape)
        if gates.size >= self.exp_form_min_size[gates.dtype.type.__name__]:
            s, m, u = self._gate_constants("exp", gates.shape, gates.dtype)
            np.multiply(gates, s, out=gates)
            # exp overflows to inf where s a > log(max float), and m / inf = 0 is the exact
            # limit; just below that band m / (1 + exp(s a)) is subnormal: neither warns here.
            # (Later products with such tiny gates may underflow, as in any float code;
            # NumPy ignores underflow by default and lstm-xp treats it as harmless.)
            with np.errstate(over="ignore", under="ignore"):
                np.exp(gates, out=gates)
                np.add(gates, 1, out=gates)
                np.divide(m, gates, out=gates)
            np.add(gates, u, out=gates)
        else:
            s, u = self._gate_constants("tanh", gates.shape, gates.dtype)
            np.multiply(gates, s, out=gates)
            np.tanh(gates, out=gates)
            np.multiply(gates, s, out=gates)
            np.add(gates, u, out=gates)

    @staticmethod
    def _product(a, b, out) -> None:
        """out[...] = a @ b, through np.dot where it can: the same BLAS call as np.matmul
        without the ufunc machinery, about 1 us less per call on the small per-step
        products (B = 1, H = 50: 3.9 against 5.3 us). np.dot wants a C-contiguous ``out``
        of the operands' dtype; any other ``out`` goes to np.matmul."""
        if out.flags.c_contiguous and out.dtype == a.dtype == b.dtype:
            np.dot(a, b, out=out)
        else:
            np.matmul(a, b, out=out)

    def transposed_operand(self, w):
        """A C-contiguous copy of w.T: OpenBLAS multiplies by it 1.1-1.7x faster than by the
        transposed view at the per-step shapes (BENCHMARKS.md, "Decisions"); the copy is made
        once per sequence and direction."""
        return np.ascontiguousarray(w.T)

    def matmul_into(self, a, b, out) -> None:
        self._product(a, b, out)

    def matmul_acc(self, a, b, out) -> None:
        product = self._workspace("matmul_acc", out.shape, out.dtype)
        self._product(a, b, product)
        np.add(out, product, out=out)

    def keep_where(self, dst, src, hold) -> None:
        np.copyto(dst, src, where=hold)

    def index_add(self, target, index, values) -> None:
        np.add.at(target, index, values)

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov) -> None:
        if weight_decay:
            decayed = self._workspace("sgd", p.shape, p.dtype)
            np.multiply(p, weight_decay, out=decayed)
            np.add(g, decayed, out=decayed)
            g = decayed
        if velocity is not None:
            np.multiply(velocity, momentum, out=velocity)
            np.add(velocity, g, out=velocity)
            if nesterov:
                step = self._workspace("sgd_nesterov", p.shape, p.dtype)
                np.multiply(velocity, momentum, out=step)
                np.add(g, step, out=step)
                g = step
            else:
                g = velocity
        update = self._workspace("sgd_update", p.shape, p.dtype)
        np.multiply(g, lr, out=update)
        np.subtract(p, update, out=p)

    def adam_update(self, p, g, m, v, step, lr, b1, b2, eps, weight_decay, decoupled) -> None:
        if weight_decay and decoupled:
            np.multiply(p, 1.0 - lr * weight_decay, out=p)
        elif weight_decay:
            decayed = self._workspace("adam_decay", p.shape, p.dtype)
            np.multiply(p, weight_decay, out=decayed)
            np.add(g, decayed, out=decayed)
            g = decayed
        tmp = self._workspace("adam", p.shape, p.dtype)
        np.multiply(m, b1, out=m)
        np.multiply(g, 1.0 - b1, out=tmp)
        np.add(m, tmp, out=m)                   # m = b1 m + (1 - b1) g
        np.multiply(v, b2, out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1.0 - b2, out=tmp)
        np.add(v, tmp, out=v)                   # v = b2 v + (1 - b2) g^2
        m_hat, v_hat = 1.0 / (1.0 - b1 ** step), 1.0 / (1.0 - b2 ** step)
        num = self._workspace("adam_num", p.shape, p.dtype)
        np.multiply(m, lr * m_hat, out=num)
        np.multiply(v, v_hat, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.divide(num, tmp, out=tmp)
        np.subtract(p, tmp, out=p)

    # The time loops, forward and backward, compiled (backends/numba_steps.py) where a step has
    # at most this many state entries B*H and numba is installed: there the NumPy loop's ~12
    # calls per step cost more than the step's arithmetic. Above it the NumPy loop is faster
    # (SIMD exp/tanh and BLAS against scalar loops): one direction's forward, compiled /
    # NumPy, on an AMD EPYC: 0.32-0.33 at B*H = 50, 0.39-0.86 at 128, 0.53-0.83 at 256,
    # 0.85-1.62 at 512, 1.12-2.24 at 1,024 (BENCHMARKS.md). The bits differ from the NumPy
    # path's, so the choice depends on the shape (and on numba being there), never on values.
    JIT_MAX_UNITS = 256

    def _loops_for(self, state):
        """backends.numba_steps where it runs the loops for states ``state`` (.., B, H)."""
        return compiled_loops() if state.shape[-2] * state.shape[-1] <= self.jit_max_units else None

    def lstm_forward_steps(self, gates, h, c, w_hh_t, hold, reverse: bool,
                           keep_activations: bool = True) -> None:
        loops = self._loops_for(c)
        if loops is None:
            super().lstm_forward_steps(gates, h, c, w_hh_t, hold, reverse)
        else:
            loops.forward_steps(gates, h, c, w_hh_t, _NO_HOLD if hold is None else hold, reverse)

    def lstm_backward_steps(self, factors, alpha, f_keep, dh, dc, w_hh, dy, hold,
                            reverse: bool) -> None:
        loops = self._loops_for(dc)
        if loops is None:
            super().lstm_backward_steps(factors, alpha, f_keep, dh, dc, w_hh, dy, hold, reverse)
        else:
            no_dy = np.zeros((0, 0, 0), dtype=dc.dtype)
            loops.backward_steps(factors, alpha, f_keep, dh, dc, w_hh, no_dy if dy is None else dy,
                                 _NO_HOLD if hold is None else hold, reverse)

    def lstm_cell_forward(self, gates, c_prev, c, h, h_prev=None, hold=None) -> None:
        H = c_prev.shape[-1]
        self._activate_gates(gates)
        i, f = gates[:, 0:H], gates[:, H:2 * H]
        g, o = gates[:, 2 * H:3 * H], gates[:, 3 * H:4 * H]
        ig = self._workspace("cell_a", c.shape, c.dtype)
        np.multiply(f, c_prev, out=c)          # c = f * c_prev + i * g
        np.multiply(i, g, out=ig)
        np.add(c, ig, out=c)
        np.tanh(c, out=ig)                     # h = o * tanh(c)
        np.multiply(o, ig, out=h)
        if hold is not None:                   # padded rows keep their state
            np.copyto(c, c_prev, where=hold)
            np.copyto(h, h_prev, where=hold)

    def lstm_backward_factors(self, gates, c_prev, c, alpha, f_keep, hold=None) -> None:
        H = c.shape[-1]
        i, f = gates[..., 0:H], gates[..., H:2 * H]
        g, o = gates[..., 2 * H:3 * H], gates[..., 3 * H:4 * H]
        tmp = self._workspace("factors", c.shape, c.dtype)
        np.tanh(c, out=alpha)                   # alpha <- tanh(c), for now
        np.multiply(alpha, o, out=tmp)          # tmp = tanh(c) o
        np.multiply(alpha, tmp, out=alpha)
        np.subtract(o, alpha, out=alpha)        # alpha = o - o tanh(c)^2
        np.subtract(1, o, out=o)
        np.multiply(o, tmp, out=o)              # k_o = tanh(c) o (1 - o)
        np.copyto(f_keep, f)
        np.subtract(1, f, out=f)
        np.multiply(f, f_keep, out=f)
        np.multiply(f, c_prev, out=f)           # k_f = c_prev f (1 - f)
        np.multiply(g, g, out=tmp)
        np.subtract(1, tmp, out=tmp)
        np.multiply(tmp, i, out=tmp)            # tmp = k_g = i (1 - g^2)
        np.multiply(g, i, out=g)                # g <- g i
        np.subtract(1, i, out=i)
        np.multiply(i, g, out=i)                # k_i = g i (1 - i)
        np.copyto(g, tmp)
        if hold is not None:                    # padded steps: k = 0, alpha = 0, f = 1
            np.copyto(gates, 0, where=hold)
            np.copyto(alpha, 0, where=hold)
            np.copyto(f_keep, 1, where=hold)

    def lstm_cell_backward_step(self, factors, alpha, f, dh, dc, dy=None, hold=None) -> None:
        B, H = dc.shape
        if not factors.flags.c_contiguous:      # else the reshape below would be a copy
            raise ValueError("lstm_cell_backward_step needs C-contiguous factors (B, 4H)")
        if dy is not None:
            np.add(dh, dy, out=dh)              # dh <- dh_t
        ifg = factors.reshape(B, 4, H)[:, 0:3, :]
        w = self._workspace("cell_b", dc.shape, dc.dtype)
        np.multiply(dh, alpha, out=w)
        np.add(dc, w, out=dc)                   # dc_t = dc + dh alpha
        np.multiply(ifg, dc[:, None, :], out=ifg)               # da_i, da_f, da_g = k dc_t
        np.multiply(factors[:, 3 * H:], dh, out=factors[:, 3 * H:])   # da_o = k_o dh
        np.multiply(dc, f, out=dc)              # dc <- dL/dc_{t-1} = dc_t f
        if hold is not None:
            np.multiply(dh, hold, out=dh)       # dh_t on held rows, 0 on the others
