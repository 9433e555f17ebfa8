#!/usr/bin/env python3
"""Forecast or sample with a trained run.

    python scripts/predict.py runs/seed-...  --steps 20          # series: the next 20 values
    python scripts/predict.py runs/chars-... --length 300 --prime "def " --temperature 0.8

Series forecasts continue the series past its last value, one step at a time, each
forecast fed back as the newest input (errors compound with the horizon).
"""

import argparse
import sys

import numpy as np

from backends import BackendUnavailableError
from lstm_xp.checkpoint import CheckpointError
from lstm_xp.train import load_run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--which", choices=("best", "last"), default="best",
                   help="parameters of the best validation epoch, or of the last epoch")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"))
    p.add_argument("--steps", type=int, default=10, help="series: values to forecast")
    p.add_argument("--length", type=int, default=300, help="chars: characters to sample")
    p.add_argument("--prime", default="def ", help="chars: text to start from")
    p.add_argument("--temperature", type=float, default=0.8, help="chars: sampling temperature")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        cfg, task, model = load_run(args.run_dir, device=args.device, which=args.which)
        if task.metric == "bpc":
            rng = np.random.default_rng(args.seed)
            print(task.sample(model, args.prime, args.length, args.temperature, rng))
            return 0
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        history = list(task.series.values[-cfg.window:])
        print(f"# {cfg.task}: forecasts after the last value ({task.series.labels[-1]}, "
              f"{task.series.values[-1]:g})")
        for step in range(1, args.steps + 1):
            value = float(task.predict(model, np.array([history[-cfg.window:]]))[0])
            history.append(value)
            print(f"t+{step}\t{value:.6g}")
    except BackendUnavailableError as err:
        hint = "" if args.device == "cpu" else " (pass --device cpu to run it on the CPU)"
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
