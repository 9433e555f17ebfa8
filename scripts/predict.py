#!/usr/bin/env python3
"""``lstm-xp predict`` from a checkout: forecast or sample with a trained run.

    lstm-xp predict runs/seed-...  --steps 20          # series: the next 20 values
    lstm-xp predict runs/chars-... --length 300 --prime "def " --temperature 0.8

``python scripts/predict.py ...`` takes the same options (lstm_xp/job/cli.py builds them).
"""

import sys

from lstm_xp.job.cli import predict_main

if __name__ == "__main__":
    sys.exit(predict_main())
