#!/usr/bin/env python3
"""Which weight layout makes cuBLAS's per-step GEMM fastest on this GPU.

    python3 scripts/gemm_layouts.py            # on a CUDA machine

The recurrent GEMM of a step, gates (B, 4H) += h_prev (B, H) @ W_hh^T, timed as the lean
loop issues it (scripts/gpu_check.py's method: calls queued behind a spin kernel, CUDA
events around them), with W_hh^T as the transposed view of W_hh (cuBLAS op T, what the
loop runs today) and as a C-contiguous copy (op N), float32 and float64; and the backward's
dh (B, H) = da (B, 4H) @ W_hh likewise (op N today, op T with the copy). Then, float32, the
backward's GEMM under each cuBLAS math mode, with beta 0 (what an unpadded step runs) and 1,
and as ``cupy.matmul``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import cupy
    import numpy as np

    from backends import get_backend
    from backends.cupy_backend import _RowGemm
    from scripts.gpu_check import SPIN_SOURCE, _timed
    gpu = get_backend("gpu")
    spin = cupy.RawKernel(SPIN_SOURCE, "spin")
    rng = np.random.default_rng(0)
    print("| dtype | B | H | forward, W^T view (op T) us | forward, W^T copy (op N) us | "
          "backward, W (op N) us | backward, W^T copy^T (op T) us |")
    print("|---|---|---|---|---|---|---|")
    for dtype in ("float32", "float64"):
        for B, H in ((1, 50), (16, 128), (64, 256), (32, 512), (64, 512), (128, 512)):
            dev = lambda *s: gpu.asarray(rng.standard_normal(s).astype(dtype))  # noqa: E731
            w, h, gates, da, dh = dev(4 * H, H), dev(B, H), dev(B, 4 * H), dev(B, 4 * H), \
                dev(B, H)
            w_t_copy = cupy.ascontiguousarray(w.T)
            cells = []
            for weight, a, out in ((w.T, h, gates), (w_t_copy, h, gates), (w, da, dh),
                                   (w_t_copy.T, da, dh)):
                gemm = _RowGemm.make(weight, rows=B, a=a, out=out, beta=1.0)
                with gemm.session() as run:
                    _, device = _timed(gpu, spin, lambda: run(a.data.ptr, out.data.ptr), 200)
                cells.append(f"{device:.1f}")
            print(f"| {dtype} | {B} | {H} | " + " | ".join(cells) + " |", flush=True)
    from cupy_backends.cuda.libs import cublas
    handle = cupy.cuda.device.get_cublas_handle()
    modes = {"default": 0, "pedantic": 2, "tf32": 3}
    print()
    print("| float32 backward dh = da @ W | " + " | ".join(
        f"{m}, beta {b} us" for m in modes for b in (0, 1)) + " | cupy.matmul us |")
    print("|---|" + "---|" * (2 * len(modes) + 1))
    for B, H in ((16, 128), (32, 128), (16, 256), (64, 512)):
        dev = lambda *s: gpu.asarray(rng.standard_normal(s).astype("float32"))  # noqa: E731
        w, da, dh = dev(4 * H, H), dev(B, 4 * H), dev(B, H)
        cells = []
        for mode in modes.values():
            cublas.setMathMode(handle, mode)
            for beta in (0.0, 1.0):
                gemm = _RowGemm.make(w, rows=B, a=da, out=dh, beta=beta)
                with gemm.session() as run:
                    _, device = _timed(gpu, spin, lambda: run(da.data.ptr, dh.data.ptr), 200)
                cells.append(f"{device:.1f}")
        cublas.setMathMode(handle, 0)
        _, device = _timed(gpu, spin, lambda: cupy.matmul(da, w), 200)
        cells.append(f"{device:.1f}")
        print(f"| B{B}-H{H} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
