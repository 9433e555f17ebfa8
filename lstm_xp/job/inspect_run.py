"""``lstm-xp inspect RUN``: a trained run's gates and its gradients through time.

On the task's test inputs (``task.inspection``), with the run's best (or last) parameters
and with the parameters it started from (the same seeded initialisation), it traces the
top LSTM layer (lstm_xp.inspect.trace) and writes into ``RUN/inspect/`` (``RUN/inspect-last/``
for the last epoch's parameters):

    gates.png          heatmaps over time of the input, forget and output gates and the
                       cell state of one test sequence, its values or characters beneath;
    gradient_flow.png  the mean over the sequences of ||dL/dh_t|| and ||dL/dc_t|| against
                       the lag from the loss, log scale, at initialisation and trained;
    inspect.json       those curves as numbers, and gate statistics.

The loss L is the task's, on the prediction the run makes at the end of each sequence: the
MSE of the forecast (series, adding), or the cross-entropy of the next character after the
window (chars), averaged over the sequences.
"""

from __future__ import annotations

import json

import numpy as np

from ..inspect import trace
from . import plots
from .train import load_run, run_folder

SATURATED = 0.05          # a gate activation below this or above 1 - this is "saturated"


def gradient_by_lag(model, x, target):
    """({"h": [...], "c": [...]}, the trace): the mean over the batch of ||dL/dh_t|| and
    ||dL/dc_t|| of the top LSTM layer, indexed by the lag T-1-t from the loss."""
    dy, dstate = model.lstm_gradients(x, target)
    tr = trace(model.lstm, x, dy=dy, dstate=dstate)
    return {name: [float(v) for v in np.linalg.norm(g[-1][0], axis=2).mean(axis=1)[::-1]]
            for name, g in (("h", tr.dh), ("c", tr.dc))}, tr


def gate_statistics(gates: np.ndarray) -> dict:
    """Mean and saturated share of each gate over (T, B, H) activations (T, B, 4H)."""
    H = gates.shape[-1] // 4
    stats = {}
    for k, name in enumerate(("input", "forget", "cell_candidate", "output")):
        g = gates[..., k * H:(k + 1) * H]
        stats[name] = {"mean": float(g.mean())}
        if name != "cell_candidate":               # tanh in [-1, 1]: not a gate
            stats[name]["saturated_share"] = float(np.mean((g < SATURATED)
                                                           | (g > 1 - SATURATED)))
    return stats


def inspect_run(run, *, which: str = "best", device=None, sequences: int = 200,
                echo=print) -> dict:
    """Write RUN/inspect/{gates.png, gradient_flow.png, inspect.json}; returns the JSON."""
    cfg, task, model = load_run(run, device=device, which=which)
    data = task.inspection(sequences)
    dtype = model.lstm.dtype_name
    x, target = data["x"].astype(dtype), np.asarray(data["target"])
    top = model.lstm.num_layers - 1
    trained, traced = gradient_by_lag(model, x, target)
    initial, _ = gradient_by_lag(task.build_model(cfg), x, target)
    all_gates = traced.gates[top][0]                                             # (T, B, 4H)
    gates, cells = all_gates[:, 0, :], traced.c[top][0][:, 0, :]   # sequence 1: (T, 4H), (T, H)
    out_dir = run_folder(run) / ("inspect" if which == "best" else "inspect-last")
    out_dir.mkdir(exist_ok=True)
    result = {
        "task": cfg.task, "parameters": which, "layer": top, "sequences": len(target),
        "steps": int(x.shape[1]),
        "loss": model.inspected_loss,
        "gradient_norm_by_lag": trained, "gradient_norm_by_lag_at_init": initial,
        "ratio_h0_to_last": {"trained": trained["h"][-1] / trained["h"][0],
                             "init": initial["h"][-1] / initial["h"][0]},
        "gates": gate_statistics(all_gates),
        "saturated": f"an activation below {SATURATED} or above {1 - SATURATED}"}
    (out_dir / "inspect.json").write_text(json.dumps(result, indent=1) + "\n")
    written = ["inspect.json"]
    if plots.available():
        H = cells.shape[1]
        plots.gate_heatmaps({"input gate i": gates[:, :H], "forget gate f": gates[:, H:2 * H],
                             "output gate o": gates[:, 3 * H:], "cell state c": cells},
                            data["shown"], data["shown_label"], data.get("marked", []),
                            f"{cfg.task}: gates and cell state of test sequence 1 (layer "
                            f"{top}, {which} parameters)", out_dir / "gates.png")
        plots.gradient_flow({"trained": trained, "at initialisation": initial},
                            f"{cfg.task}: gradient norms through time (layer {top}, mean over "
                            f"{len(target)} test sequences)", out_dir / "gradient_flow.png")
        written += ["gates.png", "gradient_flow.png"]
    else:
        echo("note: matplotlib is not installed, so inspect writes inspect.json only")
    if len(target) < sequences:
        echo(f"note: the test data hold {len(target)} sequences, fewer than the {sequences} "
             f"asked: all of them are used")
    ratio = result["ratio_h0_to_last"]
    echo(f"||dL/dh_0|| / ||dL/dh_{result['steps'] - 1}|| (first step / last, mean over "
         f"{len(target)} test sequences): {ratio['init']:.1e} at initialisation, "
         f"{ratio['trained']:.1e} trained")
    echo(f"wrote {out_dir}: {', '.join(written)}")
    return result
