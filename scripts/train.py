#!/usr/bin/env python3
"""``lstm-xp train`` from a checkout: the same program as the installed command.

    lstm-xp train                                   # the seed series, CPU, < 2 minutes
    lstm-xp train --task sunspots --device gpu
    lstm-xp train --task chars --text my.txt
    lstm-xp train --resume runs/seed-20261123-101500 --epochs 80

``python scripts/train.py ...`` takes the same options (lstm_xp/job/cli.py builds them from
lstm_xp.job.TrainConfig); --help lists every option with its default per task.
"""

import sys

from lstm_xp.job.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
