#!/usr/bin/env python3
"""Train an lstm-xp model on a built-in dataset and compare it with simple baselines.

    python scripts/train.py                           # the seed series, CPU, < 2 minutes
    python scripts/train.py --task sunspots --device gpu
    python scripts/train.py --task chars --text my.txt
    python scripts/train.py --resume runs/seed-20261123-101500 --epochs 80

Writes config.json, checkpoint.npz, metrics.json and PNG figures to --out.
"""

import argparse
import sys
import time
from pathlib import Path

from lstm_xp.checkpoint import CheckpointError
from lstm_xp.tasks import TASKS
from lstm_xp.train import TrainConfig, TrainingDiverged, resume, train

from backends import BackendUnavailableError


RESUME_OPTIONS = {"resume", "epochs", "device", "no_progress"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=TASKS, default="seed",
                   help="seed: the series lstm-xp grew from; sunspots, co2: real series; "
                        "chars: a character-level language model")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"),
                   help="default: cpu (with --resume: the device the run used)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--epochs", type=int, help="total epochs (default: per task)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--hidden-size", type=int)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    p.add_argument("--lr-decay", type=float, default=0.0, help="sgd only: lr / (1 + decay * step)")
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm limit (0: off)")
    p.add_argument("--window", type=int, help="series tasks: past values per forecast")
    p.add_argument("--seq-len", type=int, help="chars: characters per training sequence")
    p.add_argument("--batches-per-epoch", type=int, help="chars: random windows per epoch")
    p.add_argument("--bptt", type=int, help="chars: read the text as --batch-size parallel "
                   "streams in chunks of BPTT characters, carrying the state (truncated BPTT)")
    p.add_argument("--text", help="chars: train on this text file instead of stdlib sources")
    p.add_argument("--max-chars", type=int, default=200_000, help="chars: text length cap")
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation and batch order")
    p.add_argument("--on-nonfinite", choices=("stop", "skip"), default="stop",
                   help="what a step with a NaN/Inf loss or gradient does")
    p.add_argument("--out", help="run directory (default: runs/<task>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.resume:
        ignored = sorted(f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                         if k not in RESUME_OPTIONS and v != p.get_default(k))
        if ignored:
            print(f"note: with --resume the run's saved config applies; ignoring "
                  f"{', '.join(ignored)}", file=sys.stderr)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not args.no_progress
    try:
        if args.resume:
            result = resume(args.resume, epochs=args.epochs, device=args.device,
                            progress=progress)
        else:
            cfg = TrainConfig(
                task=args.task, device=args.device or "cpu", dtype=args.dtype, epochs=args.epochs,
                batch_size=args.batch_size, hidden_size=args.hidden_size,
                num_layers=args.num_layers, lr=args.lr, optimizer=args.optimizer,
                momentum=args.momentum, lr_decay=args.lr_decay, clip=args.clip or None,
                window=args.window, seq_len=args.seq_len,
                batches_per_epoch=args.batches_per_epoch, bptt=args.bptt, text=args.text,
                max_chars=args.max_chars, seed=args.seed, on_nonfinite=args.on_nonfinite)
            out = Path(args.out or f"runs/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}")
            result = train(cfg, out, progress=progress)
    except (BackendUnavailableError, CheckpointError, FileNotFoundError, FileExistsError,
            ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    print(f"results in {result.run_dir}/ (metrics.json, loss_curve.png, checkpoint.npz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
