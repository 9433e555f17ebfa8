#!/usr/bin/env python3
"""Time lstm-xp against torch.nn.LSTM on the same shapes, in the same process.

    python scripts/bench.py --device cpu            # the table of BENCHMARKS.md
    python scripts/bench.py --device gpu --dtype float32 --rounds 9
    python scripts/bench.py --configs seed,T50-B128-H512 --markdown
    python scripts/bench.py --device gpu --tf32      # both sides may use TF32 tensor cores

For each configuration it times
  train  one training step: forward + backpropagation through time, every gradient
         (parameters and input), from a fixed dL/dy;
  infer  the forward pass alone, keeping nothing for backward (eval mode; torch no_grad).
It prints lstm-xp ms, torch ms and their ratio (lower is better for lstm-xp), the ratio's
spread over rounds, the achieved GFLOP/s of the training step (24 * T * B * H * (I + H) per
layer and direction) and that as a fraction of the machine's own GEMM peak measured in this
run (the higher of a measurement before and one after the configurations), and the peak
memory of a training step against the activation bytes it must keep.

How it times, so that neither side is flattered (on a 2-core machine a BLAS library's
threads keep spinning for about 0.1 s after a call, and slow down whatever runs next):
  - in rounds; in each round each side runs alone, warm: for WARM_SECONDS before its timed
    calls, then the median of a few calls;
  - rounds alternate which side goes first;
  - a fixed Python loop and a fixed GEMM are timed before and after every round (after
    SETTLE_SECONDS idle, so that the sides' own spinning threads are not counted); a round
    whose probes are more than NOISE_LIMIT slower than the run's best is discarded (the host
    was busy);
  - the ratio is the median over kept rounds, with its range; a result whose range crosses
    1.0, or with fewer than 3 kept rounds, is marked inconclusive.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

import lstm_xp
from backends import BackendUnavailableError, get_backend
from lstm_xp import LSTM
from lstm_xp.job.config import CELL_OPTIONS

CONFIGS = {
    "T100-B64-H256": dict(T=100, B=64, I=256, H=256),
    "T100-B16-H128": dict(T=100, B=16, I=128, H=128),
    "T200-B32-I64-H512": dict(T=200, B=32, I=64, H=512),
    "T50-B128-H512": dict(T=50, B=128, I=512, H=512),
    "seed": dict(T=1000, B=1, I=1, H=50),
    "T100-B32-H256-L2-bi": dict(T=100, B=32, I=256, H=256, L=2, bi=True),
}


def config_names(parser, text: str) -> list:
    """The comma-separated config names of ``--configs``; unknown ones are a usage error."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    return names


def layer_dims(cfg):
    """(input size, hidden size) of every layer-direction."""
    L, D = cfg.get("L", 1), 2 if cfg.get("bi") else 1
    return [(cfg["I"] if k == 0 else D * cfg["H"], cfg["H"]) for k in range(L) for _ in range(D)]


def train_flops(cfg) -> float:
    return sum(24.0 * cfg["T"] * cfg["B"] * H * (I + H) for I, H in layer_dims(cfg))


def activation_bytes(cfg, itemsize) -> int:
    """What backward needs: per layer-direction the gates (4H), h and c per step, plus each
    layer's input once (both directions of a layer read the same one)."""
    T, B, D = cfg["T"], cfg["B"], 2 if cfg.get("bi") else 1
    dims = layer_dims(cfg)
    states = sum(T * B * 6 * H for _, H in dims)
    inputs = sum(T * B * I for I, _ in dims[::D])
    return (states + inputs) * itemsize


class Timer:
    """Host wall time of ``fn``, with the device synchronised before and after it (every
    queued kernel of lstm-xp and of torch is inside the interval)."""

    def __init__(self, backend, torch=None):
        self.backend = backend
        self.torch_cuda = torch is not None and backend.name == "gpu"
        self.torch = torch

    def _sync(self):
        self.backend.synchronize()
        if self.torch_cuda:
            self.torch.cuda.synchronize()

    def __call__(self, fn) -> float:
        self._sync()
        t0 = time.perf_counter()
        fn()
        self._sync()
        return (time.perf_counter() - t0) * 1e3


SWITCHES = ("peephole", "layer_norm")      # the cell options that are on or off


def cell_options(parser, text: str) -> dict:
    """``--cell`` "peephole,zoneout=0.1" as LSTM keyword arguments: switches by name, rates
    as name=value; checked by building an LSTM with them."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in CELL_OPTIONS:
            parser.error(f"--cell: unknown option {name!r}; expected some of {CELL_OPTIONS}")
        if name in SWITCHES:
            if value:
                parser.error(f"--cell: {name} is a switch; write {name}, not {item}")
            out[name] = True
            continue
        try:
            out[name] = float(value)
        except ValueError:
            parser.error(f"--cell: {name} needs a rate, as {name}=0.1; got {item!r}")
    try:
        LSTM(1, 1, **out)
    except (TypeError, ValueError) as err:
        parser.error(f"--cell: {err}")
    return out


def make_ours(cfg, dtype, device, cell=None):
    lstm = LSTM(cfg["I"], cfg["H"], num_layers=cfg.get("L", 1), bidirectional=cfg.get("bi", False),
                dtype=dtype, device=device, seed=0, **(cell or {}))
    backend = lstm.backend
    rng = np.random.default_rng(0)
    D = 2 if cfg.get("bi") else 1
    x = backend.asarray(rng.standard_normal((cfg["T"], cfg["B"], cfg["I"])).astype(dtype))
    dy = backend.asarray(rng.standard_normal((cfg["T"], cfg["B"], D * cfg["H"])).astype(dtype))

    def train_step():
        lstm.forward(x)
        lstm.backward(dy)

    def infer():
        lstm.forward(x, train=False)

    return lstm, train_step, infer


def make_torch(torch, cfg, dtype, device, ours):
    dev = "cuda" if device == "gpu" else "cpu"
    tdtype = getattr(torch, dtype)
    ref = torch.nn.LSTM(cfg["I"], cfg["H"], num_layers=cfg.get("L", 1),
                        bidirectional=cfg.get("bi", False), dtype=tdtype, device=dev)
    plain = ref.state_dict()            # a cell variant's own parameters have no torch twin
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items() if k in plain})
    rng = np.random.default_rng(0)
    D = 2 if cfg.get("bi") else 1
    x = torch.tensor(rng.standard_normal((cfg["T"], cfg["B"], cfg["I"])), dtype=tdtype,
                     device=dev, requires_grad=True)
    dy = torch.tensor(rng.standard_normal((cfg["T"], cfg["B"], D * cfg["H"])), dtype=tdtype,
                      device=dev)

    def train_step():
        ref.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = ref(x)
        y.backward(dy)

    def infer():
        with torch.no_grad():
            ref(x)

    return train_step, infer


WARM_SECONDS = 0.25       # each side alone before its timed calls
SETTLE_SECONDS = 0.2      # before a probe: BLAS threads left spinning by a side go idle
NOISE_LIMIT = 1.5         # a probe this much slower than the quiet baseline: a noisy round
CALLS_PER_ROUND = 3


class HostProbe:
    """A fixed pure-Python loop and a fixed 256 x 256 GEMM, timed: how busy the host is.
    The baseline is the median of the first samples, taken before any timing (on a shared
    2-core VM even an idle host's probe varies by up to 2x; what matters is a sustained
    slow-down, not the quietest moment)."""

    baseline_samples = 5

    def __init__(self):
        self.a = np.random.default_rng(0).standard_normal((256, 256))
        self.samples = []
        self.best = None

    def sample(self) -> tuple:
        """(loop seconds, GEMM seconds), each the best of 5 tries: short stalls (a timer
        tick, a cold cache after the settling sleep) vanish, a busy host slows all five."""
        time.sleep(SETTLE_SECONDS)         # our own spinning threads are not the host's noise
        loops, gemms = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            total = 0
            for i in range(20_000):
                total += i
            t1 = time.perf_counter()
            for _ in range(4):
                self.a @ self.a
            t2 = time.perf_counter()
            loops.append(t1 - t0)
            gemms.append(t2 - t1)
        probe = (min(loops), min(gemms))
        if len(self.samples) < self.baseline_samples:
            self.samples.append(probe)
            self.best = tuple(statistics.median(v) for v in zip(*self.samples))
        return probe

    def quiet(self, probe) -> bool:
        return all(p <= NOISE_LIMIT * b for p, b in zip(probe, self.best))


def warm_median(timer, fn, calls: int = CALLS_PER_ROUND) -> float:
    """``fn`` run alone for WARM_SECONDS (at least once), then the median of ``calls`` timed
    calls, in ms."""
    end = time.perf_counter() + WARM_SECONDS
    fn()
    while time.perf_counter() < end:
        fn()
    return statistics.median(timer(fn) for _ in range(calls))


def measure_pair(timer, probe: HostProbe, ours, theirs, rounds: int) -> dict:
    """Warm, alternating, noise-guarded rounds of ``ours`` against ``theirs`` (``theirs``
    None: ours alone). Returns the medians over kept rounds (ms), the per-round ratios and
    how many rounds were discarded as noisy."""
    kept = {"ours": [], "theirs": [], "ratios": []}
    discarded = 0
    for r in range(rounds):
        before = probe.sample()
        sides = [("ours", ours)] + ([("theirs", theirs)] if theirs is not None else [])
        if r % 2:
            sides.reverse()
        got = {name: warm_median(timer, fn) for name, fn in sides}
        after = probe.sample()
        if not (probe.quiet(before) and probe.quiet(after)) and r > 0:
            discarded += 1
            continue
        for name, ms in got.items():
            kept[name].append(ms)
        if theirs is not None:
            kept["ratios"].append(got["ours"] / got["theirs"])
    result = {"ours": statistics.median(kept["ours"]), "discarded": discarded,
              "theirs": statistics.median(kept["theirs"]) if kept["theirs"] else None,
              "ratios": kept["ratios"]}
    return result


def ratio_cell(result) -> str:
    """"0.93 (0.90-0.97)", with " ?" when inconclusive (range crosses 1, or < 3 rounds)."""
    ratios = result["ratios"]
    if not ratios:
        return "-"
    low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
    unsure = len(ratios) < 3 or (low < 1.0 < high)
    return f"{mid:.2f} ({low:.2f}-{high:.2f}){' ?' if unsure else ''}"


def gemm_peak_gflops(backend, dtype) -> float:
    """Best GFLOP/s of square matrix products on this device, measured now."""
    timer, best = Timer(backend), 0.0
    sizes = (1024, 2048, 4096) if backend.name == "gpu" else (512, 1024, 2048)
    for n in sizes:
        a = backend.asarray(np.random.default_rng(0).standard_normal((n, n)).astype(dtype))
        out = backend.empty((n, n), a.dtype)
        backend.matmul_into(a, a, out)
        for _ in range(3):
            ms = timer(lambda: backend.matmul_into(a, a, out))
            best = max(best, 2.0 * n ** 3 / (ms * 1e-3) / 1e9)
    return best


def peak_step_memory(backend, train_step) -> int:
    """Bytes allocated during one training step beyond what was already held.

    CPU: tracemalloc's peak. GPU: the growth of CuPy's memory pool over the step, after
    returning its cached free blocks (the pool keeps every block the step needed at once).
    """
    if backend.name == "gpu":
        pool = backend.xp.get_default_memory_pool()
        backend.synchronize()
        pool.free_all_blocks()
        held = pool.total_bytes()
        train_step()
        backend.synchronize()
        return pool.total_bytes() - held
    tracemalloc.start()
    train_step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def machine_line(backend) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    parts = [f"CPU {cpu} ({os.cpu_count()} logical cores)", f"Python {platform.python_version()}"]
    parts += [f"{k} {v}" for k, v in backend.describe().items()]
    return ", ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    p.add_argument("--rounds", type=int, default=7,
                   help="rounds per measurement (see the module docstring)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--cell", default="", help="lstm-xp cell variants, e.g. 'layer_norm' or "
                   "'peephole,zoneout=0.1' (torch runs its plain LSTM)")
    p.add_argument("--no-torch", action="store_true", help="time lstm-xp alone")
    p.add_argument("--tf32", action="store_true",
                   help="GPU (Ampere or newer), float32: let cuBLAS (lstm-xp and torch) and "
                        "cuDNN use TF32 tensor cores, the GEMM peak included; default is full "
                        "FP32 on both sides")
    args = p.parse_args(argv)
    if args.tf32 and (args.device != "gpu" or args.dtype != "float32"):
        p.error("--tf32 applies to --device gpu with --dtype float32")
    names = config_names(p, args.configs)
    cell = cell_options(p, args.cell)
    try:
        backend = get_backend(args.device)
    except BackendUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("error: torch is not installed (pip install torch==2.13.0 for the CPU build), "
                  "or pass --no-torch", file=sys.stderr)
            return 2
        if args.device == "gpu":
            if not torch.cuda.is_available():
                print("error: this torch build has no CUDA; install a CUDA build of torch to "
                      "compare on the GPU, or pass --no-torch", file=sys.stderr)
                return 2
            # the same math on both sides: full FP32 (cuBLAS default math), or TF32 if asked
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = args.tf32
            torch.backends.cuda.matmul.allow_tf32 = args.tf32
        else:
            # OpenBLAS uses every logical core unless told otherwise: give torch the same
            torch.set_num_threads(_blas_threads())
    if args.tf32:
        backend.allow_tf32 = True               # lstm-xp's switch: cuBLAS's math mode
        if not backend.allow_tf32:
            print("error: cuBLAS did not accept the TF32 math mode", file=sys.stderr)
            return 2
    timer = Timer(backend, torch)
    peak = gemm_peak_gflops(backend, args.dtype)
    print(f"# lstm-xp {lstm_xp.__version__} vs torch "
          f"{torch.__version__ if torch else '(not run)'} on {args.device}, {args.dtype}")
    extra = ""
    if args.device == "cpu":
        extra = _jit_note(backend)
    if torch is not None and args.device == "cpu":
        extra += f", threads: OpenBLAS {_blas_threads()}, torch {torch.get_num_threads()}"
    elif torch is not None:
        extra = (f", torch TF32: cudnn {torch.backends.cudnn.allow_tf32}, "
                 f"matmul {torch.backends.cuda.matmul.allow_tf32}")
    if args.device == "gpu":
        extra += f", lstm-xp cuBLAS TF32: {args.tf32}"
    print(f"# {machine_line(backend)}{extra}")
    print(f"# command: python scripts/bench.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# GEMM peak measured before the configurations: {peak:.0f} GFLOP/s; {args.rounds} "
          f"rounds of warm, alternating blocks; ratio = median (range) over the kept rounds, "
          f"'?' = inconclusive")
    head = ("config", "train ms", "torch ms", "train ratio", "infer ms", "torch ms",
            "infer ratio", "GFLOP/s", "% peak", "step MB", "activ. MB", "noisy")
    rows = []
    print("  " + " | ".join(head), file=sys.stderr, flush=True)       # then a row per config
    probe = HostProbe()
    for _ in range(probe.baseline_samples):
        probe.sample()
    with lstm_xp.finite_checks(False):
        for name in names:
            cfg = CONFIGS[name]
            ours, o_train, o_infer = make_ours(cfg, args.dtype, args.device, cell)
            t_train = t_infer = None
            if torch is not None:
                t_train, t_infer = make_torch(torch, cfg, args.dtype, args.device, ours)
            train = measure_pair(timer, probe, o_train, t_train, args.rounds)
            infer = measure_pair(timer, probe, o_infer, t_infer, args.rounds)
            gflops = train_flops(cfg) / (train["ours"] * 1e-3) / 1e9
            mem = peak_step_memory(backend, o_train)
            act = activation_bytes(cfg, np.dtype(args.dtype).itemsize)
            rows.append([name, f"{train['ours']:.1f}", _fmt(train["theirs"]), ratio_cell(train),
                         f"{infer['ours']:.1f}", _fmt(infer["theirs"]), ratio_cell(infer),
                         f"{gflops:.0f}", gflops, f"{mem / 2**20:.1f}", f"{act / 2**20:.1f}",
                         f"{train['discarded'] + infer['discarded']}/{2 * args.rounds}"])
            print("  " + " | ".join(_percent_of(rows[-1], peak)), file=sys.stderr, flush=True)
    # a busy host depresses one peak measurement; the higher of two keeps "% peak" honest
    after = gemm_peak_gflops(backend, args.dtype)
    print(f"# GEMM peak measured after them: {after:.0f} GFLOP/s; % peak divides by "
          f"{max(peak, after):.0f}")
    _print_table(head, [_percent_of(row, max(peak, after)) for row in rows], args.markdown)
    return 0


def _percent_of(row, peak: float) -> list:
    """A table row with its GFLOP/s value (column 8) as a percentage of ``peak``."""
    return row[:8] + [f"{100 * row[8] / peak:.0f}%"] + row[9:]


def _jit_note(backend) -> str:
    """Whether lstm-xp's compiled time loops (numba, the ``jit`` extra) run, and where."""
    from backends.numpy_backend import compiled_loops
    if compiled_loops() is None:
        return ", no numba (NumPy time loops everywhere)"
    import numba
    if not backend.jit_max_units:
        return f", numba {numba.__version__} (compiled time loops off)"
    return f", numba {numba.__version__} (compiled time loops at B*H <= {backend.jit_max_units})"


def _blas_threads() -> int:
    """Threads NumPy's OpenBLAS uses: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else all cores."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def _fmt(ms):
    return "-" if ms is None else f"{ms:.1f}"


def _print_table(head, rows, markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for r in (head, *rows):
        print("  ".join(str(x).rjust(w) for x, w in zip(r, widths)))


if __name__ == "__main__":
    sys.exit(main())
