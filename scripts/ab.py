#!/usr/bin/env python3
"""Interleaved A/B timing of the working tree against another revision of lstm-xp.

    python scripts/ab.py --ref HEAD~1                      # every config of bench.py
    python scripts/ab.py --ref 284d0b8 --configs seed,T100-B16-H128 --rounds 9

REF is checked out into a temporary git worktree. Each round starts one timing process per
side, in alternating order (ref-new, new-ref, ...), so that the machine's drift hits both
sides alike; a process builds the LSTM of
a configuration through the public API only (so revisions with different internals compare
fairly), warms up, and reports the median of a few training steps (forward + backward through
time) and inference forwards, and an optimizer step with an output head (zero_grad, global-norm
clipping, Adam). The table gives the medians over rounds and new / ref ratios
(lower is better for the working tree). CPU, float32 unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench import CONFIGS, config_names  # noqa: E402  (the same configurations as bench.py)

# Runs in a fresh interpreter inside one tree; argv: config (JSON), dtype, device, steps.
CHILD = r"""
import json, statistics, sys, time
import numpy as np
import lstm_xp
from lstm_xp import LSTM, Adam, Linear, clip_grad_norm
cfg, dtype, device, steps = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
lstm = LSTM(cfg["I"], cfg["H"], num_layers=cfg.get("L", 1), bidirectional=cfg.get("bi", False),
            dtype=dtype, device=device, seed=0)
rng = np.random.default_rng(0)
D = 2 if cfg.get("bi") else 1
x = lstm.backend.asarray(rng.standard_normal((cfg["T"], cfg["B"], cfg["I"])).astype(dtype))
dy = lstm.backend.asarray(rng.standard_normal((cfg["T"], cfg["B"], D * cfg["H"])).astype(dtype))
def timed(fn):
    lstm.backend.synchronize(); t0 = time.perf_counter(); fn(); lstm.backend.synchronize()
    return (time.perf_counter() - t0) * 1e3
def train():
    lstm.forward(x); lstm.backward(dy)
def infer():
    lstm.forward(x, train=False)
head = Linear(D * cfg["H"], 1, dtype=dtype, device=device, seed=1)
opt = Adam([lstm, head], lr=1e-3)
def optim():              # what a training step adds: zero_grad, clipping, Adam (20 times)
    for _ in range(20):
        opt.zero_grad(); clip_grad_norm([lstm, head], 1.0); opt.step()
with lstm_xp.finite_checks(False):
    train(); infer(); optim()
    tr, inf, op = [], [], []
    for _ in range(steps):
        tr.append(timed(train)); inf.append(timed(infer)); op.append(timed(optim) / 20)
print(json.dumps({"train": statistics.median(tr), "infer": statistics.median(inf),
                  "optim": statistics.median(op)}))
"""


MEASURES = ("train", "infer", "optim")


def time_tree(tree: Path, cfg: dict, dtype: str, device: str, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(tree), os.environ.get("PYTHONPATH", "")) if p))
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), dtype, device, str(steps)],
                         cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"timing in {tree} failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", required=True, help="git revision to compare with (e.g. HEAD~1)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    p.add_argument("--rounds", type=int, default=7, help="alternating process pairs per config")
    p.add_argument("--steps", type=int, default=3, help="timed steps per process (median)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = p.parse_args(argv)
    names = config_names(p, args.configs)
    if args.rounds < 1 or args.steps < 1:
        p.error("--rounds and --steps must be at least 1")
    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run(git + ["rev-parse", "--short", f"{args.ref}^{{commit}}"],
                         capture_output=True, text=True)
    if rev.returncode != 0:
        p.error(f"--ref {args.ref!r} is not a commit of this repository: {rev.stderr.strip()}")
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    new_label = f"{head}{' + uncommitted changes' if dirty else ''}"
    with tempfile.TemporaryDirectory(prefix="lstm-xp-ab-") as tmp:
        ref_tree = Path(tmp) / "ref"
        try:
            subprocess.run(git + ["worktree", "add", "--detach", "--quiet", str(ref_tree),
                                  rev.stdout.strip()], check=True)
            print(f"# working tree ({new_label}) vs {args.ref} ({rev.stdout.strip()}), "
                  f"{args.device}, {args.dtype}; medians of {args.rounds} rounds x "
                  f"{args.steps} steps")
            print("| config | train ms new | ref | new / ref | infer ms new | ref | new / ref "
                  "| optim ms new | ref | new / ref |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for name in names:
                runs = {"new": [], "ref": []}
                sides = [("ref", ref_tree), ("new", ROOT)]
                for _ in range(args.rounds):
                    for side, tree in sides:
                        runs[side].append(time_tree(tree, CONFIGS[name], args.dtype,
                                                    args.device, args.steps))
                    sides.reverse()
                med = {side: {k: statistics.median(r[k] for r in rs) for k in MEASURES}
                       for side, rs in runs.items()}
                n, r = med["new"], med["ref"]
                print(f"| {name} | " + " | ".join(
                    f"{n[k]:.3f} | {r[k]:.3f} | {n[k] / r[k]:.2f}" for k in MEASURES) + " |",
                    flush=True)
        finally:
            subprocess.run(git + ["worktree", "remove", "--force", str(ref_tree)], check=False,
                           capture_output=True)
            subprocess.run(git + ["worktree", "prune"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
