#!/usr/bin/env python3
"""One-shot check of the GPU path on a machine with a CUDA GPU: tests, timings, a report.

    PYTHONPATH=. python3 scripts/gpu_check.py --out gpu-report.md     # 8 minutes at most

Made for a borrowed GPU with little time on it: one call runs, each part under its own
time limit (480 s in all at most, 330 s with --quick), and writes one Markdown report,
after each part (a killed run keeps what it finished), and to stdout:
  1. the device and library versions;
  2. the ``gpu``-marked tests against the real device (tests/test_gpu.py: kernels, cuBLAS,
     the whole model, training, the job end to end; GPU results against the CPU's);
  3. scripts/bench.py on the GPU, float32 (and float64), lstm-xp against torch.nn.LSTM on
     CUDA where torch has it (cuDNN where torch brings it);
  4. the host cost of the time loop: one forward's wall time while only queueing work,
     against the same forward waited for, on a small and a large shape, which says whether
     the per-step design is bound by Python and launches or by the GPU.
Needs numpy, CuPy and pytest; torch optional. Nothing is installed or downloaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list, limit: int) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=limit)
        return done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return 124, out + f"\n(stopped after {limit} s)"


def _torch_has_cuda() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:          # no torch, or a broken one: time lstm-xp alone
        return False


def host_cost(shapes) -> list:
    """Per shape: ms to queue one eval forward (no wait) and ms until it is done."""
    import numpy as np
    from backends import get_backend
    from lstm_xp import LSTM, finite_checks
    gpu = get_backend("gpu")
    rows = []
    for T, B, H in shapes:
        lstm = LSTM(H, H, device="gpu", seed=0)
        x = gpu.asarray(np.random.default_rng(0).standard_normal((T, B, H)).astype("float32"))
        with finite_checks(False):
            for _ in range(3):
                lstm.forward(x, train=False)
            gpu.synchronize()
            queued, done = [], []
            for _ in range(10):
                t0 = time.perf_counter()
                lstm.forward(x, train=False)
                t1 = time.perf_counter()
                gpu.synchronize()
                t2 = time.perf_counter()
                queued.append(t1 - t0)
                done.append(t2 - t0)
        q, d = sorted(queued)[5] * 1e3, sorted(done)[5] * 1e3
        rows.append(f"| T{T}-B{B}-H{H} | {q:.2f} | {d:.2f} | {q / T * 1e3:.1f} | "
                    f"{'host' if q > 0.8 * d else 'device'} |")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "."),
                   help="report file, or a folder for gpu-report.md (default: $OUT or .)")
    p.add_argument("--quick", action="store_true", help="benchmark float32 only")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.is_dir():
        out = out / "gpu-report.md"
    lines = ["# GPU check", ""]

    def part(title, text):
        lines.extend([f"## {title}", "", text.rstrip(), ""])
        out.write_text("\n".join(lines))           # a partial report survives a kill
        print(f"## {title}\n{text.rstrip()}\n", flush=True)

    code, text = run([sys.executable, "-c", (
        "import json, backends; b = backends.get_backend('gpu'); print(json.dumps(b.describe()))")],
        60)
    part("Device", text)
    if code != 0:
        return 1
    code, text = run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p",
                      "no:cacheprovider", "tests/test_gpu.py"], 180)
    part(f"Tests (pytest -m gpu tests/test_gpu.py, exit {code})",
         "```\n" + "\n".join(text.splitlines()[-40:]) + "\n```")
    torch_flag = [] if _torch_has_cuda() else ["--no-torch"]
    for dtype, limit in (("float32", 120),) if args.quick else (("float32", 120),
                                                               ("float64", 90)):
        _, text = run([sys.executable, "scripts/bench.py", "--device", "gpu", "--dtype", dtype,
                       "--rounds", "3", "--markdown"] + torch_flag, limit)
        part(f"scripts/bench.py --device gpu --dtype {dtype} --rounds 3", text)
    try:
        rows = host_cost([(100, 16, 128), (100, 64, 512), (1000, 1, 50)])
        part("Host cost of a forward (eval, float32)",
             "| shape | queued (ms) | done (ms) | host us/step | bound by |\n"
             "|---|---|---|---|---|\n" + "\n".join(rows))
    except Exception as err:          # the report says what failed; the rest stands
        part("Host cost of a forward", f"failed: {type(err).__name__}: {err}")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
