#!/usr/bin/env python3
"""The GPU time loop's host cost per step, measured without a GPU.

    PYTHONPATH=tests/emulated_gpu CUPY_EMULATOR_SKIP_WORK=1 python scripts/step_overhead.py

On the emulated device with CUPY_EMULATOR_SKIP_WORK=1 every kernel launch and cuBLAS call
returns as soon as it is logged, so what is left of a direction's forward or backward is
the host-side Python that lstm-xp and CuPy's Python layers (``cupy/cublas.py`` is CuPy's
own file here) run per step. Printed per step, forward and backward, plain and padded:
  us/step     wall time, (time at T=2N - time at T=N) / N, each the fastest of --repeats;
  calls/step  Python function calls under cProfile, counted the same way.
What this leaves out: the compiled parts of CuPy (view creation, argument marshalling and
the launch itself are Cython and C there, emulated in Python here), and the GPU driver. So
the numbers rank host paths against each other; they are not a GPU's host cost.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import numpy as np


def _direction_inputs(gpu, T, B, I, H, padded):
    rng = np.random.default_rng(0)
    arr = lambda *shape: gpu.asarray(rng.standard_normal(shape).astype("float32"))  # noqa: E731
    w = dict(w_ih=arr(4 * H, I), w_hh=arr(4 * H, H), b_ih=arr(4 * H), b_hh=arr(4 * H))
    hold = None
    if padded:
        lengths = np.arange(B) % T + 1
        hold = gpu.asarray(np.arange(T)[:, None, None] >= lengths[None, :, None])
    return arr(T, B, I), w, arr(B, H), arr(B, H), hold, arr(T, B, H)


def _one(gpu, T, B, I, H, padded):
    """Callables running one forward, and one backward of a fresh forward's tape."""
    from lstm_xp.bptt import direction_backward, direction_forward
    x, w, h0, c0, hold, dy = _direction_inputs(gpu, T, B, I, H, padded)
    grads = {k: gpu.zeros(tuple(v.shape), v.dtype) for k, v in w.items()}
    dx = gpu.empty(tuple(x.shape), x.dtype)

    def forward():
        return direction_forward(gpu, x, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"], h0, c0,
                                 reverse=False, hold=hold)

    def backward(tape):
        direction_backward(gpu, tape, w["w_ih"], w["w_hh"], dy, None, None, grads, dx,
                           accumulate_dx=False)
    return forward, backward


def _measure(fn, repeats):
    """(median seconds, Python function calls) of ``fn()``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    calls = pstats.Stats(profile).total_calls
    return min(times), calls


def per_step(gpu, steps, B, I, H, padded, repeats):
    rows = {}
    results = {}
    for T in (steps, 2 * steps):
        forward, backward = _one(gpu, T, B, I, H, padded)
        forward()                               # caches filled, kernels compiled
        backward(forward())
        tapes = [forward() for _ in range(repeats + 1)]
        results[T] = (_measure(forward, repeats), _measure(lambda: backward(tapes.pop()),
                                                           repeats))
    for k, name in enumerate(("forward", "backward")):
        (t1, c1), (t2, c2) = results[steps][k], results[2 * steps][k]
        rows[name] = ((t2 - t1) / steps * 1e6, (c2 - c1) / steps)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200, help="N: compare T = N and T = 2N")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    import cupy
    from backends import get_backend
    from lstm_xp import finite_checks
    if not hasattr(cupy, "_emulator"):
        import importlib.util
        if importlib.util.find_spec("cupy._emulator") is None:
            p.error("run on the emulated device: PYTHONPATH=tests/emulated_gpu "
                    "CUPY_EMULATOR_SKIP_WORK=1")
    from _gpu_emulator.kernels import SKIP_WORK
    if not SKIP_WORK:
        p.error("set CUPY_EMULATOR_SKIP_WORK=1, or the kernels' CPU time is counted")
    gpu = get_backend("gpu")
    print("| path | forward us/step | forward calls/step | backward us/step | "
          "backward calls/step |")
    print("|---|---|---|---|---|")
    with finite_checks(False):
        for padded in (False, True):
            rows = per_step(gpu, args.steps, 4, 8, 8, padded, args.repeats)
            (fu, fc), (bu, bc) = rows["forward"], rows["backward"]
            print(f"| {'padded' if padded else 'plain'} | {fu:.1f} | {fc:.0f} | {bu:.1f} | "
                  f"{bc:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
