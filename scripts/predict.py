#!/usr/bin/env python3
"""Forecast or sample with a trained run.

    python scripts/predict.py runs/seed-...  --steps 20          # series: the next 20 values
    python scripts/predict.py runs/chars-... --length 300 --prime "def " --temperature 0.8

Series forecasts continue the series past its last value, one step at a time, each
forecast fed back as the newest input (errors compound with the horizon). The loop lives
in the library (ForecastTask.forecast, CharTask.sample); lstm_xp/cli.py builds the options.
"""

import sys

from lstm_xp.job.cli import predict_main

if __name__ == "__main__":
    sys.exit(predict_main())
