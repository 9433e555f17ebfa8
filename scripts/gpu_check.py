#!/usr/bin/env python3
"""One-shot check of the GPU path on a lent GPU: device, micro-timings, tests, benchmarks.

    python3 scripts/gpu_check.py --out "$OUT" --budget 360

Made for a borrowed GPU with minutes on it. Every part runs in its own child process, so a
crash or hang in one costs only that part; the parts share one time budget (--budget
seconds, default 360: the whole run ends within it plus a few seconds), each getting a
share of what is left, so time one part does not use passes to the next. Every line a
part prints goes into the report (gpu-report.md) and to stdout as it comes, so a part
stopped by the budget, or a killed run, keeps every number it had finished. The parts:
  1. device: the backend's describe(), ``cupy.show_config()``;
  2. micro: host us against GPU us for one cuBLAS GEMM, one cell kernel launch, one
     forward and one training step, at T100-B64-H512 and T100-B16-H128, float32; the GPU
     time from CUDA events around calls queued behind a spin kernel (so the device runs
     them back to back, without waiting on the host); and a 4096^3 float32 GEMM's error
     and time with allow_tf32 off and on;
  3. tests: tests/test_gpu.py and tests/test_cuda_kernel_source.py against the device, each
     test limited to --per-test-timeout seconds; the whole log in gpu-pytest.log beside the
     report, its summary in the report;
  4. bench: scripts/bench.py on the GPU (training step and forward, lstm-xp against torch
     where torch has CUDA), float32 with TF32 off, float32 with TF32 on, then float64.
Needs numpy, CuPy and pytest; torch optional. Nothing is installed or downloaded.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a share of the budget left when the part starts, against the parts still to run
PARTS = (("device", 1), ("micro", 2), ("tests", 5), ("bench float32", 2),
         ("bench float32 --tf32", 2), ("bench float64", 2))
MIN_PART_SECONDS = 5

# keeps the device busy for ns nanoseconds (globaltimer), so that work queued behind it
# starts only once the host has queued all of it; the emulated device has no timer: no spin
SPIN_SOURCE = r"""
extern "C" __global__ void spin(long long ns) {
#ifdef __CUDA_ARCH__
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); }
    while ((long long)(t - t0) < ns);
#endif
}
"""


class Report:
    """gpu-report.md, appended to and flushed line by line, echoed to stdout."""

    def __init__(self, path: Path):
        self.path = path
        path.write_text("")
        self.write("# GPU check\n\n")

    def write(self, text: str) -> None:
        with self.path.open("a") as f:
            f.write(text)
        sys.stdout.write(text)
        sys.stdout.flush()


def run_streaming(cmd: list, limit: float, line_sink) -> tuple[int, bool]:
    """Run ``cmd`` (unbuffered, stderr into stdout) for at most ``limit`` seconds, handing
    each output line to ``line_sink`` as it comes. Returns (exit code, stopped by limit)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)

    def pump():
        for line in proc.stdout:
            line_sink(line)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    stopped = False
    try:
        proc.wait(timeout=max(limit, 0.1))
    except subprocess.TimeoutExpired:
        stopped = True
        os.killpg(proc.pid, signal.SIGKILL)        # the part and anything it started
        proc.wait()
    reader.join(timeout=5)
    return proc.returncode, stopped


def part_command(name: str, args) -> list:
    py = [sys.executable, "-u"]
    if name in ("device", "micro"):
        return py + [str(Path(__file__).resolve()), "--part", name]
    if name == "tests":
        return py + ["-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "--durations=5",
                     f"--per-test-timeout={args.per_test_timeout}", "tests/test_gpu.py",
                     "tests/test_cuda_kernel_source.py"]
    dtype = name.split()[1]
    torch = [] if _torch_has_cuda() else ["--no-torch"]
    return py + ["scripts/bench.py", "--device", "gpu", "--dtype", dtype, "--rounds",
                 str(args.rounds), "--markdown", *torch,
                 *(["--tf32"] if name.endswith("--tf32") else []),
                 *(["--configs", args.configs] if args.configs else [])]


def _torch_has_cuda() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:          # no torch, or a broken one: time lstm-xp alone
        return False


# ------------------------------------------------------------------ the parts run here
def device_part() -> None:
    import json

    import cupy

    import backends
    print(json.dumps(backends.get_backend("gpu").describe()))
    cupy.show_config()


def _timed(gpu, spin, fn, calls: int) -> tuple[float, float]:
    """(host us, GPU us) per call of ``fn``. Host: the fastest of ``calls`` calls, each
    started with nothing queued and waited for before the next (the time to queue it, not
    to run it). GPU: ``calls`` calls queued behind a spin kernel that holds the device until
    all are queued, timed by CUDA events around them (their work back to back). Keep calls
    x launches per call under the driver's queue of about a thousand launches, or the host
    blocks on it."""
    import cupy
    import numpy as np
    fn()
    gpu.synchronize()
    host = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        host.append(time.perf_counter() - t0)
        gpu.synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    spin((1,), (1,), (np.int64(int((2 * sum(host) + 0.005) * 1e9)),))
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return min(host) * 1e6, cupy.cuda.get_elapsed_time(start, end) / calls * 1e3


def micro_part() -> None:
    import cupy
    import numpy as np

    from backends import get_backend
    from backends.cupy_backend import _RowGemm
    from lstm_xp import LSTM, finite_checks
    gpu = get_backend("gpu")
    spin = cupy.RawKernel(SPIN_SOURCE, "spin")
    rng = np.random.default_rng(0)
    dev = lambda *shape: gpu.asarray(rng.standard_normal(shape).astype("float32"))  # noqa
    print("| what (float32) | calls | host us/call | GPU us/call | host us/step | "
          "GPU us/step | bound by |")
    print("|---|---|---|---|---|---|---|")

    def row(what, fn, calls, steps=1):
        host, device = _timed(gpu, spin, fn, calls)
        print(f"| {what} | {calls} | {host:.1f} | {device:.1f} | {host / steps:.1f} | "
              f"{device / steps:.1f} | {'host' if host > device else 'GPU'} |")

    for T, B, H in ((100, 64, 512), (100, 16, 128)):
        h, w_t, gates = dev(B, H), dev(4 * H, H).T, dev(B, 4 * H)
        c_prev, c, hh = dev(B, H), dev(B, H), dev(B, H)
        row(f"GEMM (B,H)x(H,4H) B{B}-H{H}, cupy.cublas.gemm",
            lambda: gpu.matmul_acc(h, w_t, out=gates), 200)
        gemm = _RowGemm.make(w_t, rows=B, a=h, out=gates, beta=1.0)
        with gemm.session() as run_gemm:
            row(f"GEMM B{B}-H{H}, the lean loop's binding call",
                lambda: run_gemm(h.data.ptr, gates.data.ptr), 200)
        row(f"cell kernel B{B}-H{H}, CuPy arrays",
            lambda: gpu.lstm_cell_forward(gates, c_prev, c, hh), 200)
        kernel, (grid, block) = gpu._kernel("lstm_cell_forward", "float32"), \
            gpu._launch_shape(B * H)
        args = (gates.data.ptr, c_prev.data.ptr, c.data.ptr, hh.data.ptr, np.int64(B * H),
                np.int32(H), np.int32(1))
        row(f"cell kernel B{B}-H{H}, the lean loop's raw addresses",
            lambda: kernel(grid, block, args), 200)
        lstm = LSTM(H, H, device="gpu", seed=0)
        x, dy = dev(T, B, H), dev(T, B, H)

        def train_step():
            lstm.forward(x)
            lstm.backward(dy)
        with finite_checks(False):
            row(f"forward (eval) T{T}-B{B}-H{H}", lambda: lstm.forward(x, train=False), 3, T)
            row(f"training step T{T}-B{B}-H{H}", train_step, 1, T)
    print()
    a, b = dev(4096, 4096), dev(4096, 4096)
    exact = cupy.matmul(a.astype(cupy.float64), b.astype(cupy.float64))
    scale = float(cupy.max(cupy.abs(exact)))
    print("| 4096^3 float32 GEMM | GPU us | max abs error / max abs value |")
    print("|---|---|---|")
    for on in (False, True):
        gpu.allow_tf32 = on
        out = cupy.empty((4096, 4096), dtype=cupy.float32)
        _, device = _timed(gpu, spin, lambda: gpu.matmul_into(a, b, out=out), 5)
        err = float(cupy.max(cupy.abs(out - exact))) / scale
        m_err = float(cupy.max(cupy.abs(cupy.matmul(a, b) - exact))) / scale
        print(f"| allow_tf32={on}: cupy.cublas.gemm | {device:.0f} | {err:.1e} |")
        print(f"| allow_tf32={on}: cupy.matmul | - | {m_err:.1e} |")
    gpu.allow_tf32 = False


# ------------------------------------------------------------------------ the driver
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "."),
                   help="report file, or a folder for gpu-report.md (default: $OUT or .)")
    p.add_argument("--budget", type=float, default=360,
                   help="seconds for all parts together (default 360)")
    p.add_argument("--per-test-timeout", type=float, default=60,
                   help="seconds a single test may take (default 60)")
    p.add_argument("--rounds", type=int, default=3, help="bench.py --rounds (default 3)")
    p.add_argument("--configs", default="", help="bench.py --configs (default: all)")
    p.add_argument("--parts", default=",".join(name for name, _ in PARTS),
                   help="comma-separated subset of the parts, in their order (default: all: "
                        + ", ".join(name for name, _ in PARTS) + ")")
    p.add_argument("--part", choices=("device", "micro"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part:
        {"device": device_part, "micro": micro_part}[args.part]()
        return 0
    if args.budget <= 0:
        p.error(f"--budget must be > 0 seconds, got {args.budget}")
    chosen = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in dict(PARTS)]
    if unknown or not chosen:
        p.error(f"--parts: unknown {unknown}; the parts are {[n for n, _ in PARTS]}")
    parts = [(name, share) for name, share in PARTS if name in chosen]
    out = Path(args.out)
    if out.is_dir():
        out = out / "gpu-report.md"
    report = Report(out)
    pytest_log = out.with_name("gpu-pytest.log")
    deadline = time.monotonic() + args.budget
    report.write(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; budget "
                 f"{args.budget:.0f} s; python {sys.version.split()[0]}; command: "
                 f"python scripts/gpu_check.py {' '.join(sys.argv[1:] if argv is None else argv)}"
                 f"\n\n")
    for i, (name, share) in enumerate(parts):
        left = deadline - time.monotonic()
        limit = max(left * share / sum(s for _, s in parts[i:]), min(MIN_PART_SECONDS, left))
        if limit < 1:
            report.write(f"## {name}\n\n(skipped: {left:.0f} s of the budget left)\n\n")
            continue
        cmd = part_command(name, args)
        shown = " ".join("python" if c == sys.executable else c for c in cmd)
        report.write(f"## {name}\n\n`{shown}` (limit {limit:.0f} s)\n\n```\n")
        if name == "tests":
            log = pytest_log.open("w")
            tail: list = []

            def sink(line, log=log, tail=tail):
                log.write(line)
                log.flush()
                tail.append(line)
                if "PASSED" not in line and ("FAILED" in line or "ERROR" in line
                                             or "passed" in line or "failed" in line):
                    report.write(line)          # failures and the summary, as they come
            t0 = time.monotonic()
            code, stopped = run_streaming(cmd, limit, sink)
            log.close()
            report.write(f"(last lines of {pytest_log.name}:)\n" + "".join(tail[-25:]))
        else:
            t0 = time.monotonic()
            code, stopped = run_streaming(cmd, limit, report.write)
        took = time.monotonic() - t0
        report.write("```\n\n" + (f"(stopped after {took:.0f} s: its share of the budget)\n\n"
                                  if stopped else f"(exit {code}, {took:.0f} s)\n\n"))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
