#!/usr/bin/env python3
"""The seed's claim, measured: a plain RNN and an LSTM on the adding problem.

    python scripts/gradient_flow.py --out docs/study              # about 15 min on 2 cores

For each sequence length T (--lengths) and seed (--seeds), an RNN (tanh) and an LSTM, each
with a linear head on its last hidden state, train on the adding problem
(lstm_xp.job.tasks.adding) under the same budget: --steps Adam steps of --batch fresh
sequences, hidden size --hidden, learning rate --lr, gradient norm clipped at 1. Every
--eval-every steps the test MSE (the task's fixed 1000 test sequences) is measured; a run is
solved when it falls below 0.01 (always predicting 1 scores 1/6), and stops there.

Gradient flow: on 200 test sequences, with L the MSE of the prediction, the mean over the
batch of ||dL/dh_t|| (and ||dL/dc_t|| for the LSTM), exactly as BPTT computes them
(lstm_xp.inspect.trace, in float64 on a copy of the parameters: the RNN's fall below
float32's range), against the lag T-1-t from the loss; at initialisation and at the end of
training (training itself runs in float32). Written to --out: results.json (every run), table.md, gradient_flow.png
(T = --figure-length, the first seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SOLVED = 0.01


class Net:
    """A recurrent layer (LSTM or RNN, batch_first) and a linear head on its last h."""

    def __init__(self, kind: str, hidden: int, seed: int, dtype: str = "float32"):
        from lstm_xp import LSTM, RNN, Linear
        self.kind = kind
        self.rnn = LSTM(2, hidden, batch_first=True, seed=seed, forget_bias=1.0, dtype=dtype) \
            if kind == "lstm" else RNN(2, hidden, batch_first=True, seed=seed, dtype=dtype)
        self.head = Linear(hidden, 1, seed=seed + 1, dtype=dtype)

    def forward(self, x, train=None):
        out = self.rnn.forward(x, train=train)
        h_n = out[1][0] if self.kind == "lstm" else out[1]
        return self.head.forward(h_n[-1], train=train)

    def dstate(self, dout):
        """dL/d(final state) from dL/d(prediction) (B, 1), in the layer's dstate form."""
        dh_n = (dout @ self.head.params["weight"])[None].astype(self.rnn.dtype)
        return (dh_n, None) if self.kind == "lstm" else dh_n

    def backward(self, dout):
        self.head.backward(dout)
        self.rnn.backward(None, self.dstate(dout))


def gradient_by_lag(net, x, target) -> dict:
    """Mean over the batch of ||dL/dh_t|| (and ||dL/dc_t||), indexed by lag T-1-t; traced in
    float64 on a copy of the trained parameters, since a plain RNN's gradients fall below
    float32's smallest number (1e-45) within a hundred steps."""
    from lstm_xp.inspect import trace
    twin = Net(net.kind, net.rnn.hidden_size, 0, dtype="float64")
    twin.rnn.load_state_dict(net.rnn.state_dict())
    twin.head.load_state_dict(net.head.state_dict())
    x = x.astype(np.float64)
    pred = twin.forward(x, train=False)[:, 0]
    dout = (2.0 * (pred - target) / len(target))[:, None]
    tr = trace(twin.rnn, x, dstate=twin.dstate(dout))
    curves = {"h": np.linalg.norm(tr.dh[0][0], axis=2).mean(axis=1)[::-1]}
    if tr.dc is not None:
        curves["c"] = np.linalg.norm(tr.dc[0][0], axis=2).mean(axis=1)[::-1]
    return {k: [float(v) for v in c] for k, c in curves.items()}


def run(kind, T, seed, args, test, probe) -> dict:
    from lstm_xp import Adam, MSELoss, clip_grad_norm, finite_checks
    from lstm_xp.job.tasks.adding import adding_examples
    net = Net(kind, args.hidden, seed)
    opt = Adam([net.rnn, net.head], lr=args.lr)
    loss = MSELoss()
    rng = np.random.default_rng([seed, T])
    at_init = gradient_by_lag(net, *probe)
    curve, solved_at, t0 = [], None, time.perf_counter()
    with finite_checks(False):
        for step in range(1, args.steps + 1):
            x, target = adding_examples(rng, args.batch, T)
            opt.zero_grad()
            loss.forward(net.forward(x.astype(np.float32)), target[:, None].astype(np.float32))
            net.backward(loss.backward())
            clip_grad_norm([net.rnn, net.head], 1.0)
            opt.step()
            if step % args.eval_every == 0:
                mse = float(np.mean((net.forward(test[0], train=False)[:, 0] - test[1]) ** 2))
                curve.append((step, mse))
                if mse < SOLVED:
                    solved_at = step
                    break
    after = gradient_by_lag(net, *probe)
    ratio = lambda g: g["h"][-1] / g["h"][0]     # noqa: E731  ||dL/dh_0|| / ||dL/dh_T-1||
    return {"model": kind, "T": T, "seed": seed, "solved_at": solved_at,
            "final_mse": curve[-1][1], "mse_curve": curve, "seconds": time.perf_counter() - t0,
            "ratio_init": ratio(at_init), "ratio_trained": ratio(after),
            "grad_init": at_init, "grad_trained": after}


def table(results, args) -> str:
    lines = [f"| model | T | solved (steps to test MSE < {SOLVED}), per seed | final test MSE "
             f"| ‖∂L/∂h_0‖ / ‖∂L/∂h_T-1‖ at init | after training |",
             "|---|---|---|---|---|---|"]
    for kind in ("rnn", "lstm"):
        for T in args.lengths:
            rows = [r for r in results if r["model"] == kind and r["T"] == T]
            if not rows:                        # a run of one model (--models) has no other
                continue
            solved = ", ".join(str(r["solved_at"]) if r["solved_at"] else "not solved"
                               for r in rows)
            mse = ", ".join(f"{r['final_mse']:.3g}" for r in rows)
            def span(key):
                low, high = min(r[key] for r in rows), max(r[key] for r in rows)
                return f"{low:.1e}" if low == high else f"{low:.1e} to {high:.1e}"
            lines.append(f"| {kind.upper()} | {T} | {solved} | {mse} | {span('ratio_init')} | "
                         f"{span('ratio_trained')} |")
    return "\n".join(lines) + "\n"


def figure(results, T, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, when, title in zip(axes, ("grad_init", "grad_trained"),
                               ("at initialisation", "after training")):
        for r in results:
            if r["T"] != T or r["seed"] != results[0]["seed"]:
                continue
            g = r[when]
            label = "RNN  ‖∂L/∂h_t‖" if r["model"] == "rnn" else "LSTM ‖∂L/∂h_t‖"
            color = "tab:red" if r["model"] == "rnn" else "tab:blue"
            ax.semilogy(np.arange(len(g["h"])), g["h"], color=color, label=label)
            if "c" in g:
                ax.semilogy(np.arange(len(g["c"])), g["c"], color=color, linestyle="--",
                            label="LSTM ‖∂L/∂c_t‖")
        ax.set_title(f"adding problem, T = {T}: {title}")
        ax.set_xlabel("lag from the loss (T-1-t, steps)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("mean over 200 test sequences")
    axes[1].legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gradient-flow", help="folder for the results")
    p.add_argument("--lengths", default="50,100,200",
                   help="comma-separated sequence lengths T (default 50,100,200)")
    p.add_argument("--seeds", default="0,1,2",
                   help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--models", default="rnn,lstm",
                   help="comma-separated: rnn, lstm (default both)")
    p.add_argument("--steps", type=int, default=3000, help="Adam steps per run (the budget)")
    p.add_argument("--batch", type=int, default=64,
                   help="sequences per step (default 64)")
    p.add_argument("--hidden", type=int, default=64,
                   help="hidden size (default 64)")
    p.add_argument("--lr", type=float, default=1e-2,
                   help="Adam learning rate, both models (default 0.01)")
    p.add_argument("--eval-every", type=int, default=100,
                   help="steps between test MSE measurements (default 100)")
    p.add_argument("--figure-length", type=int, default=100,
                   help="the T drawn in gradient_flow.png (default 100)")
    p.add_argument("--merge", nargs="+", metavar="DIR",
                   help="instead of training: combine the results.json of runs made in "
                        "parallel (e.g. --models rnn and --models lstm) into --out")
    args = p.parse_args(argv)
    args.lengths = [int(v) for v in args.lengths.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        parts = [json.loads((Path(d) / "results.json").read_text()) for d in args.merge]
        results = [r for part in parts for r in part["runs"]]
        settings = {**parts[0]["settings"], "models": "rnn,lstm", "merged_from": args.merge}
        (out / "results.json").write_text(json.dumps({"settings": settings, "runs": results},
                                                     indent=1))
        args.lengths = sorted({r["T"] for r in results})
        (out / "table.md").write_text(table(results, args))
        if args.figure_length in args.lengths:
            figure(results, args.figure_length, out / "gradient_flow.png")
        print(table(results, args))
        return 0
    from lstm_xp.job.tasks.adding import AddingTask
    results = []
    for T in args.lengths:
        task = AddingTask(T)
        x, target = task.split["test"]
        test = (x.astype(np.float32), target)
        probe = (x[:200].astype(np.float32), target[:200])
        for kind in args.models.split(","):
            for seed in seeds:
                r = run(kind, T, seed, args, test, probe)
                results.append(r)
                solved = f"solved at step {r['solved_at']}" if r["solved_at"] else \
                    f"not solved in {args.steps} steps"
                print(f"{kind} T={T} seed={seed}: {solved}, final MSE "
                      f"{r['final_mse']:.4f}, ratio {r['ratio_init']:.1e} -> "
                      f"{r['ratio_trained']:.1e} ({r['seconds']:.0f} s)", flush=True)
                (out / "results.json").write_text(json.dumps(
                    {"settings": {k: v for k, v in vars(args).items()}, "runs": results},
                    indent=1))
    (out / "table.md").write_text(table(results, args))
    if args.figure_length in args.lengths:
        figure(results, args.figure_length, out / "gradient_flow.png")
    print(table(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
