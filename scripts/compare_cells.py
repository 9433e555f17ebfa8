#!/usr/bin/env python3
"""What the cell variants are worth: each one (and the plain cell) trained on the same
tasks with the same budget over several seeds, scored on validation and test.

    python scripts/compare_cells.py                      # the table in README (~10 minutes)
    python scripts/compare_cells.py --seeds 1 --quick    # a smoke run (~1 minute)

Every run is the training job (``lstm_xp.job.train``) with one variant switched on, everything
else equal: same data, epochs, model size, learning rate and seeds. Writes
``compare_cells.md`` (the table: mean and standard deviation over seeds of the best
validation score, the test score of that epoch's parameters, seconds per epoch) and
``compare_cells.png`` (test scores with their spread) into ``--out``. Lower is better for
both scores (chars: bits per character; sunspots: RMSE in the series' units).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lstm_xp.job.train import TrainConfig, train

VARIANTS = {
    "plain": {},
    "peephole": dict(peephole=True),
    "layer_norm": dict(layer_norm=True),
    "zoneout 0.1": dict(zoneout=0.1),
    "recurrent_dropout 0.25": dict(recurrent_dropout=0.25),
    "weight_drop 0.5": dict(weight_drop=0.5),
}
# the same budget for every variant; small enough for a laptop CPU
TASKS = {
    "chars": dict(epochs=6, hidden_size=128, batches_per_epoch=60, max_chars=100_000),
    "sunspots": dict(epochs=40, hidden_size=32),
}
QUICK = {"chars": dict(epochs=2, hidden_size=32, batches_per_epoch=10, max_chars=20_000),
         "sunspots": dict(epochs=4, hidden_size=16)}


def run_one(task: str, budget: dict, variant: dict, seed: int, root: Path) -> dict:
    cfg = TrainConfig(task=task, seed=seed, **budget, **variant)
    result = train(cfg, root / f"{task}-{len(list(root.iterdir()))}", progress=False,
                   echo=lambda *a, **k: None)
    history = result.history
    metric = result.metrics["metric"]
    return {"val": min(h[f"val_{metric}"] for h in history),
            "test": result.metrics[f"test_{metric}"],
            "seconds_per_epoch": result.metrics["wall_seconds"] / len(history)}


def summarise(values) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4g} ± {spread:.2g}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant and task (default 3)")
    p.add_argument("--out", default=".", help="folder for compare_cells.md and .png")
    p.add_argument("--quick", action="store_true", help="a tiny budget, to check it runs")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = QUICK if args.quick else TASKS
    results: dict = {}
    started = time.perf_counter()
    total = len(budgets) * len(VARIANTS) * args.seeds
    with tempfile.TemporaryDirectory(prefix="compare-cells-") as tmp:
        done = 0
        for task, budget in budgets.items():
            for name, variant in VARIANTS.items():
                runs = []
                for seed in range(args.seeds):
                    runs.append(run_one(task, budget, variant, seed, Path(tmp)))
                    done += 1
                    print(f"[{done}/{total}] {task:9s} {name:23s} seed {seed}: val "
                          f"{runs[-1]['val']:.4g}, test {runs[-1]['test']:.4g} "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
                results[(task, name)] = runs
    metric = {"chars": "bits per character", "sunspots": "RMSE"}
    lines = [f"Budget per run: {', '.join(f'{t}: {b}' for t, b in budgets.items())}; "
             f"{args.seeds} seeds; mean ± standard deviation over seeds. Command: "
             f"`python scripts/compare_cells.py --seeds {args.seeds}"
             f"{' --quick' if args.quick else ''}`.", ""]
    for task in budgets:
        lines += [f"**{task}** ({metric[task]}, lower is better)", "",
                  "| cell | best val | test | s / epoch |", "|---|---|---|---|"]
        for name in VARIANTS:
            runs = results[(task, name)]
            lines.append(f"| {name} | {summarise([r['val'] for r in runs])} | "
                         f"{summarise([r['test'] for r in runs])} | "
                         f"{statistics.fmean(r['seconds_per_epoch'] for r in runs):.2f} |")
        lines.append("")
    (out / "compare_cells.md").write_text("\n".join(lines))
    print("\n".join(lines))
    try:
        _plot(results, budgets, metric, out / "compare_cells.png")
    except ImportError:
        print("matplotlib is not installed: no figure (pip install '.[train]')")
    return 0


def _plot(results, budgets, metric, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 3.6))
    for ax, task in zip(axes if len(budgets) > 1 else [axes], budgets):
        tests = [[r["test"] for r in results[(task, name)]] for name in VARIANTS]
        means = [statistics.fmean(t) for t in tests]
        spreads = [statistics.stdev(t) if len(t) > 1 else 0.0 for t in tests]
        ax.barh(list(VARIANTS), means, xerr=spreads, color="#4c72b0", alpha=0.8)
        for y, t in enumerate(tests):
            ax.plot(t, [y] * len(t), "k.", ms=4)
        ax.set_xlim(min(min(t) for t in tests) * 0.97, max(max(t) for t in tests) * 1.02)
        ax.invert_yaxis()
        ax.set_title(f"{task}: test {metric[task]} (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
