#!/usr/bin/env python3
"""Forecasting checked against known answers: covariates, intervals, multi-step backtests.

    python scripts/forecast_study.py --out docs/forecast-study      # about 2 min on 2 cores

Three parts (--parts), each run for every seed (--seeds) through the training job's own
path (a CSV file and ``lstm_xp.job.train``, as ``lstm-xp train --series`` runs it):

covariates  y_t = 2 x_{t-1} + 0.1 e_t, x and e white noise (600 monthly values): the
            target is noise but for the covariate's past. The LSTM with ``--covariates x``
            must do far better than without; the noise floor is RMSE 0.1.
coverage    y_t = 3 sin(2 pi t / 12) + 0.5 e_t (600 monthly values), e ~ N(0, 1), with
            ``--quantiles 0.05,0.1,0.25,0.5,0.75,0.9,0.95 --horizon 3``: each central band
            should hold about its nominal share of the test targets (90, 80, 50 %), and
            the 0.1-0.9 band is ideally 2 x 1.2816 x 0.5 = 1.28 wide.
builtin     seed (--horizon 10 --backtest 10), sunspots (--horizon 6 --backtest 7) and co2
            (--horizon 12 --backtest 6: as many origins as fit H apart in the test span),
            with the task's defaults: the backtest RMSE (mean and spread over the origins)
            of the LSTM and the baselines, and the verdict.

Each part writes <part>.json to --out; table.md is rebuilt from every part's JSON there, so
parts may run as separate processes (--parts covariates,coverage in one, builtin in another).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ("covariates", "coverage", "builtin")
BUILTIN = {"seed": (10, 10), "sunspots": (6, 7), "co2": (12, 6)}   # -> horizon, origins
LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


def monthly_csv(path: Path, columns: dict) -> Path:
    """A CSV with a month column from 2000-01 and the given columns."""
    n = len(next(iter(columns.values())))
    months = [f"{2000 + k // 12:04d}-{k % 12 + 1:02d}" for k in range(n)]
    lines = ["month," + ",".join(columns)]
    lines += [m + "," + ",".join(f"{columns[c][k]:.6f}" for c in columns)
              for k, m in enumerate(months)]
    path.write_text("\n".join(lines) + "\n")
    return path


def fit(cfg_kw: dict, work: Path, name: str, device: str):
    from lstm_xp.job.train import TrainConfig, train
    return train(TrainConfig(device=device, **cfg_kw), work / name, progress=False,
                 echo=lambda *_: None)


def covariates_part(seeds, work: Path, device: str, say) -> list:
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(600)
        y = np.r_[0.0, 2 * x[:-1]] + 0.1 * rng.standard_normal(600)
        path = monthly_csv(work / f"cov-{seed}.csv", {"y": y, "x": x})
        common = dict(series=str(path), column="y", window=8, hidden_size=16, epochs=30,
                      lr=0.01, batch_size=16, seed=seed)
        for label, extra in (("without", {}), ("with --covariates x", {"covariates": "x"})):
            t0 = time.perf_counter()
            m = fit({**common, **extra}, work, f"cov-{seed}-{len(extra)}", device).metrics
            rows.append({"seed": seed, "run": label, "lstm": m["test_rmse"],
                         **{k: v for k, v in m["baselines"].items()}})
            say(f"covariates seed {seed} {label}: lstm {m['test_rmse']:.4f}, " + ", ".join(
                f"{k} {v:.4f}" for k, v in m["baselines"].items())
                + f" ({time.perf_counter() - t0:.0f} s)")
    return rows


def coverage_part(seeds, work: Path, device: str, say) -> list:
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        t = np.arange(600)
        y = 3 * np.sin(2 * np.pi * t / 12) + 0.5 * rng.standard_normal(600)
        path = monthly_csv(work / f"coverage-{seed}.csv", {"y": y})
        t0 = time.perf_counter()
        result = fit(dict(series=str(path), window=24, hidden_size=16, epochs=40, lr=0.005,
                          batch_size=16, horizon=3, quantiles=LEVELS, seed=seed),
                     work, f"coverage-{seed}", device)
        task, model = result.task, result.model
        test = task.split["test"]
        q = task.predict(model, test.inputs, test.extra)
        lo, hi = LEVELS.index(0.1), LEVELS.index(0.9)
        row = {"seed": seed, "lstm_rmse": result.metrics["test_rmse"],
               "width_0.1-0.9": float(np.mean(q[..., hi] - q[..., lo])),
               **{band: c["coverage"] for band, c in result.metrics["intervals"].items()},
               "by_step_0.1-0.9": result.metrics["intervals"]["0.1-0.9"]["coverage_by_step"]}
        rows.append(row)
        say(f"coverage seed {seed}: " + ", ".join(
            f"{b} {c['coverage']:.1%}" for b, c in result.metrics["intervals"].items())
            + f" ({time.perf_counter() - t0:.0f} s)")
    return rows


def builtin_part(seeds, work: Path, device: str, say) -> list:
    rows = []
    for series, (horizon, origins) in BUILTIN.items():
        for seed in seeds:
            t0 = time.perf_counter()
            m = fit(dict(task=series, horizon=horizon, backtest=origins, seed=seed), work,
                    f"{series}-{seed}", device).metrics
            bt = m["backtest"]
            rows.append({"series": series, "horizon": horizon, "origins": origins,
                         "seed": seed,
                         "backtest": bt["rmse"], "verdict": bt["verdict"],
                         "test_rmse": m["test_rmse"], "baselines": m["baselines"]})
            say(f"{series} (horizon {horizon}) seed {seed}: backtest lstm "
                f"{bt['rmse']['lstm']['mean']:.4g} +- {bt['rmse']['lstm']['std']:.3g}; "
                + ", ".join(f"{k} {v}" for k, v in bt["verdict"].items())
                + f" ({time.perf_counter() - t0:.0f} s)")
    return rows


def spread(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    return f"{values.mean():.3g} ± {values.std(ddof=1) if len(values) > 1 else 0:.2g}"


def table(out: Path) -> str:
    """table.md from whatever parts' JSON files are in ``out``."""
    md = []
    if (out / "covariates.json").is_file():
        rows = json.loads((out / "covariates.json").read_text())
        seeds = sorted({r["seed"] for r in rows})
        md += ["### Covariates: y_t = 2 x_{t-1} + 0.1 e_t",
               "", f"Test RMSE, mean ± std over seeds {', '.join(map(str, seeds))} (the "
               "noise floor is 0.1; the target's own std is about 2).", "",
               "| inputs | LSTM | linear_arx (the LSTM's inputs) | linear_ar (y's window) | "
               "persistence |", "|---|---|---|---|---|"]
        for run in ("without", "with --covariates x"):
            sel = [r for r in rows if r["run"] == run]
            cells = [spread([r[k] for r in sel]) if k in sel[0] else "-"
                     for k in ("lstm", "linear_arx", "linear_ar", "persistence")]
            md.append(f"| {run} | " + " | ".join(cells) + " |")
        md.append("")
    if (out / "coverage.json").is_file():
        rows = json.loads((out / "coverage.json").read_text())
        md += ["### Intervals: 3 sin(2 pi t / 12) + N(0, 0.5²), quantiles "
               + ",".join(f"{q:g}" for q in LEVELS) + ", horizon 3", "",
               "Share of the test targets (all 3 steps) inside each band, per seed:", "",
               "| seed | 0.05-0.95 (nominal 90 %) | 0.1-0.9 (80 %) | 0.25-0.75 (50 %) | "
               "0.1-0.9 width (ideal 1.28) | median's RMSE (ideal 0.5) |",
               "|---|---|---|---|---|---|"]
        for r in rows:
            md.append(f"| {r['seed']} | {r['0.05-0.95']:.1%} | {r['0.1-0.9']:.1%} | "
                      f"{r['0.25-0.75']:.1%} | {r['width_0.1-0.9']:.3g} | "
                      f"{r['lstm_rmse']:.3g} |")
        md.append("")
    if (out / "builtin.json").is_file():
        rows = json.loads((out / "builtin.json").read_text())
        md += ["### Built-in series, backtest origins over the test span, H steps apart", "",
               "Backtest RMSE over the origins (mean ± std over origins); the LSTM's as the "
               "mean over seeds of each seed's mean (± the seeds' spread), then each seed's "
               "verdict against each baseline (b: beats, t: ties, l: is beaten by).", "",
               "| series | horizon | origins | LSTM | persistence | seasonal_naive | "
               "linear_ar |", "|---|---|---|---|---|---|---|"]
        short = {"beats": "b", "ties": "t", "beaten by": "l"}
        for series in BUILTIN:
            sel = [r for r in rows if r["series"] == series]
            if not sel:
                continue
            cells = [spread([r["backtest"]["lstm"]["mean"] for r in sel])]
            for base in ("persistence", "seasonal_naive", "linear_ar"):
                bt = sel[0]["backtest"].get(base)
                cells.append("-" if bt is None else
                             f"{bt['mean']:.3g} ± {bt['std']:.2g} "
                             f"({''.join(short[r['verdict'][base]] for r in sel)})")
            md.append(f"| {series} | {sel[0]['horizon']} | {sel[0]['origins']} | "
                      + " | ".join(cells) + " |")
        md.append("")
    return "\n".join(md)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/forecast-study", help="folder for the results")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated, of {', '.join(PARTS)} (default: all)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per configuration")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu")
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"--parts: unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    if args.seeds < 1:
        p.error(f"--seeds must be at least 1, got {args.seeds}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {"covariates": covariates_part, "coverage": coverage_part, "builtin": builtin_part}
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            rows = runs[part](list(range(args.seeds)), Path(tmp), args.device,
                              lambda line: print(line, flush=True))
            (out / f"{part}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "table.md").write_text(table(out) + "\n")
    print(f"wrote {out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
