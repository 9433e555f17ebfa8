#!/usr/bin/env python3
"""Time the NumPy backend's two forms of the activations on this machine, by size.

    python docs/experiments/activation_forms.py

For the gates (B*4H entries) it times the whole forward cell, ``lstm_cell_forward``, with
each gate form forced; for tanh(c) (B*H entries) the two ways of computing it alone:

    tanh form:  np.tanh(c)                                          one pass
    exp form:   2 / (1 + exp(-2c)) - 1   (under one np.errstate)     five passes

Best of 7 repeats of 200 calls, in microseconds per call, then exp / tanh (below 1: the exp
form is faster). The gate threshold in backends/numpy_backend.py (EXP_FORM_MIN_SIZE) is read
off the first table; the numbers depend on the CPU and on whether NumPy dispatches AVX-512
there. The second table is why an exp form of tanh(c) was tried (BENCHMARKS.md, "Measured
and not done").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backends.numpy_backend import NumpyBackend  # noqa: E402

REPEATS, CALLS = 7, 200


def best_us(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(CALLS):
            fn()
        times.append(time.perf_counter() - t0)
    return min(times) / CALLS * 1e6


def forced(form: str) -> NumpyBackend:
    backend = NumpyBackend()
    size = {"tanh": float("inf"), "exp": 0}[form]
    backend.exp_form_min_size = {"float32": size, "float64": size}
    return backend


def cell_times(B: int, H: int, dtype) -> dict:
    rng = np.random.default_rng(0)
    a = (3 * rng.standard_normal((B, 4 * H))).astype(dtype)
    c_prev = rng.standard_normal((B, H)).astype(dtype)
    gates, c, h = np.empty_like(a), np.empty_like(c_prev), np.empty_like(c_prev)
    out = {}
    for form in ("tanh", "exp"):
        backend = forced(form)

        def step():
            np.copyto(gates, a)
            backend.lstm_cell_forward(gates, c_prev, c, h)
        out[form] = best_us(step) - best_us(lambda: np.copyto(gates, a))
    return out


def tanh_exp_form(x, out) -> None:
    np.multiply(x, -2.0, out=out)
    with np.errstate(over="ignore", under="ignore"):
        np.exp(out, out=out)
        np.add(out, 1.0, out=out)
        np.divide(2.0, out, out=out)
    np.subtract(out, 1.0, out=out)


def tanh_times(n: int, dtype) -> dict:
    x = (3 * np.random.default_rng(0).standard_normal(n)).astype(dtype)
    out = np.empty_like(x)
    return {"tanh": best_us(lambda: np.tanh(x, out=out)),
            "exp": best_us(lambda: tanh_exp_form(x, out))}


def main() -> None:
    print(f"numpy {np.__version__}")
    for dtype in (np.float32, np.float64):
        print(f"\n{dtype.__name__}: forward cell, us (B*4H entries; H = 128 but the smallest)")
        for B, H in ((1, 50), (2, 128), (4, 128), (8, 128), (16, 128), (32, 128), (64, 256),
                     (128, 512)):
            t = cell_times(B, H, dtype)
            print(f"  {B * 4 * H:7d}  tanh {t['tanh']:8.1f}  exp {t['exp']:8.1f}  "
                  f"exp/tanh {t['exp'] / t['tanh']:.2f}")
        print(f"{dtype.__name__}: tanh(c) alone, us (B*H entries)")
        for n in (50, 256, 512, 1024, 2048, 4096, 16384, 65536):
            t = tanh_times(n, dtype)
            print(f"  {n:7d}  tanh {t['tanh']:8.1f}  exp {t['exp']:8.1f}  "
                  f"exp/tanh {t['exp'] / t['tanh']:.2f}")


if __name__ == "__main__":
    main()
