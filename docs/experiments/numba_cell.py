"""Experiment (2026-12-01, docs/benchmark-log.md "A Numba cell, measured and not adopted"): a
Numba-compiled cell forward against the NumPy cell, in the same process. Needs numba
(`pip install numba`); not part of lstm-xp and not run by the tests.

    python docs/experiments/numba_cell.py
"""
import time, statistics, math
import numpy as np
import numba
import lstm_xp
from lstm_xp import LSTM
from backends import get_backend

@numba.njit(cache=True, fastmath=False)
def cell_forward(gates, c_prev, c, h):
    B, H4 = gates.shape
    H = H4 // 4
    for b in range(B):
        for j in range(H):
            i = 0.5 * math.tanh(0.5 * gates[b, j]) + 0.5
            f = 0.5 * math.tanh(0.5 * gates[b, H + j]) + 0.5
            g = math.tanh(gates[b, 2 * H + j])
            o = 0.5 * math.tanh(0.5 * gates[b, 3 * H + j]) + 0.5
            cn = f * c_prev[b, j] + i * g
            gates[b, j] = i; gates[b, H + j] = f; gates[b, 2 * H + j] = g; gates[b, 3 * H + j] = o
            c[b, j] = cn
            h[b, j] = o * math.tanh(cn)

cpu = get_backend("cpu")
orig = cpu.lstm_cell_forward
def fused(gates, c_prev, c, h, h_prev=None, hold=None):
    if hold is not None:
        return orig(gates, c_prev, c, h, h_prev, hold)
    cell_forward(gates, c_prev, c, h)

def bench(T, B, I, H, label):
    lstm = LSTM(I, H, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype("float32")
    res = {}
    for name, fn in (("numpy", orig), ("numba", fused), ("numpy", orig), ("numba", fused)):
        cpu.lstm_cell_forward = fn
        with lstm_xp.finite_checks(False):
            for _ in range(3): y = lstm.forward(x, train=False)[0]
            ts = []
            for _ in range(11):
                t = time.perf_counter(); lstm.forward(x, train=False); ts.append(time.perf_counter() - t)
        res.setdefault(name, []).append(statistics.median(ts) * 1e3)
    cpu.lstm_cell_forward = orig
    print(label, {k: [f"{v:.2f}" for v in vs] for k, vs in res.items()})
bench(1000, 1, 1, 50, "seed infer ms")
bench(100, 16, 128, 128, "T100-B16-H128 infer ms")
bench(100, 64, 256, 256, "T100-B64-H256 infer ms")
