#!/usr/bin/env python3
"""Train an lstm-xp model on a built-in dataset and compare it with simple baselines.

    python scripts/train.py                           # the seed series, CPU, < 2 minutes
    python scripts/train.py --task sunspots --device gpu
    python scripts/train.py --task chars --text my.txt
    python scripts/train.py --resume runs/seed-20261123-101500 --epochs 80

Writes config.json, checkpoint.npz, metrics.json and figures to the run folder; --help lists
every option with its default per task. The options come from lstm_xp.job.train.TrainConfig
(lstm_xp/cli.py builds them).
"""

import sys

from lstm_xp.job.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
