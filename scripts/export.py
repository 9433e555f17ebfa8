#!/usr/bin/env python3
"""Export a trained run to ONNX, to run where lstm-xp is not installed.

    python scripts/export.py runs/co2-...   co2.onnx     # 'window' (B, W) -> 'forecast' (B,)
    python scripts/export.py runs/chars-... chars.onnx   # 'ids' (B, T) -> 'logits' (B, T, V)

Needs the onnx package (pip install ".[onnx]"); lstm_xp/onnx.py builds the graph.
"""

import sys

from lstm_xp.job.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
