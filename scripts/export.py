#!/usr/bin/env python3
"""``lstm-xp export`` from a checkout: a trained run as ONNX, to run where lstm-xp is not
installed.

    lstm-xp export runs/co2-...   co2.onnx     # 'window' (B, W) -> 'forecast' (B,)
    lstm-xp export runs/chars-... chars.onnx   # 'ids' (B, T) -> 'logits' (B, T, V)

Needs the onnx package (pip install "lstm-xp[onnx]"); lstm_xp/job/export.py builds the graph.
"""

import sys

from lstm_xp.job.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
