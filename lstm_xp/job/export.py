"""A trained run as one ONNX graph, from raw inputs to raw outputs (``lstm-xp export``).

A layer's own export is the library's (``lstm_xp.onnx.export``); this module adds what the
run knows: its task's scaling and vocabulary, and its configuration in ``metadata_props``.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from .train import load_run


def export_run(run, path):
    """Write a trained run's whole model (best parameters) to ``path``: raw inputs to raw
    outputs as the task defines them (``Task.export_onnx``), the run's facts in
    ``metadata_props``. Returns the ModelProto."""
    cfg, task, model = load_run(run, device="cpu")
    model.eval()
    return task.export_onnx(model, path, {"lstm_xp_config": json.dumps(asdict(cfg),
                                                                        sort_keys=True)})
