"""The series tasks (seed, sunspots, co2; a user's CSV in user_series.py): windows of past
values -> the next value, scored by RMSE against persistence, seasonal-naive and linear-AR
baselines."""

from __future__ import annotations

import math

import numpy as np

from ...losses import MSELoss
from .. import baselines as bl
from ..data import DeltaScaler, Series, load_series, make_windows, max_window, time_split
from ..models import SeriesForecaster
from ..options import ConfigError, positive_int_option
from .base import SimpleTask


class ForecastTask(SimpleTask):
    """One-step-ahead forecasting of a series from a window of past values (a built-in one
    by name, or any :class:`~lstm_xp.job.data.Series`).

    The series is cut in time order into train/val/test by the position of the value to
    forecast (70/15/15 %); windows are encoded relative to their last value
    (``data.DeltaScaler``, fitted on the training part only).
    """

    metric = "rmse"
    train_loss = "MSE of the scaled one-step change"
    options = ("window",)
    # chosen on the validation split (never on test): see README "Results"
    DEFAULTS = {
        "seed": dict(epochs=50, batch_size=32, hidden_size=32, lr=2e-3, window=32),
        "sunspots": dict(epochs=60, batch_size=16, hidden_size=32, lr=5e-3, window=24),
        "co2": dict(epochs=80, batch_size=16, hidden_size=32, lr=5e-3, window=36),
    }
    # name -> (type, default, help) of scripts/predict.py's options for this kind
    predict_options = {"steps": (int, 10, "values to forecast past the end of the series")}

    @classmethod
    def validate(cls, cfg) -> None:
        cfg.window = positive_int_option("window", cfg.window)

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.task, cfg.window)

    @classmethod
    def from_run(cls, cfg, run_dir, resuming: bool):
        """The task of the saved run in ``run_dir``: a built-in series is built anew."""
        return cls.from_config(cfg)

    def __init__(self, series: Series | str, window: int, fractions=(0.7, 0.15, 0.15)):
        self.series = load_series(series) if isinstance(series, str) else series
        self.task_name = self.series.name
        values = self.series.values
        self.window = window
        self.fractions = fractions
        if window > max_window(len(values), fractions):
            raise self._too_long(window, fractions)
        windows = make_windows(values, window)
        bounds = time_split(len(values), fractions)
        self.split = {}
        for part, (lo, hi) in bounds.items():
            self.split[part] = windows.subset((windows.index >= lo) & (windows.index < hi))
        self.scaler = DeltaScaler(values[:bounds["train"][1]])
        self.loss = MSELoss()

    def _too_long(self, window: int, fractions) -> ConfigError:
        """The error for a window that leaves some part of the series no example."""
        n = len(self.series.values)
        return ConfigError("window", "{name} must be in [1, {top}] for the {n}-value series "
                           "{series!r}: its training part (the first {a} values) must hold "
                           "a window and the value after it; got {got}",
                           top=max_window(n, fractions), n=n, series=self.series.name,
                           a=time_split(n, fractions)["train"][1], got=window)

    @property
    def period(self) -> int | None:
        """The seasonal period of the seasonal_naive baseline (None: no such baseline)."""
        return self.series.period

    def build_model(self, cfg):
        return SeriesForecaster(cfg.hidden_size, cfg.num_layers, dtype=cfg.dtype,
                                device=cfg.device, seed=cfg.seed, dropout=cfg.dropout,
                                **cfg.cell_options())

    def steps_per_epoch(self, cfg) -> int:
        return math.ceil(len(self.split["train"]) / cfg.batch_size)

    def batches(self, rng, cfg):
        train = self.split["train"]
        x = self.scaler.encode_inputs(train.inputs).astype(cfg.dtype)
        y = self.scaler.encode_targets(train.inputs, train.targets).astype(cfg.dtype)
        order = rng.permutation(len(train))
        for start in range(0, len(order), cfg.batch_size):
            pick = order[start:start + cfg.batch_size]
            yield x[pick], y[pick]

    def reset_state(self) -> None:
        """Nothing to forget: every window is forecast from a zero state."""

    def predict(self, model, inputs: np.ndarray) -> np.ndarray:
        """(N, W) raw windows -> (N,) one-step forecasts in the series' units."""
        dtype = model.lstm.dtype_name
        out = model.forward(self.scaler.encode_inputs(inputs).astype(dtype), train=False)
        return self.scaler.decode(inputs, model.backend.to_numpy(out))

    def inspection(self, n: int) -> dict:
        """Up to ``n`` test windows for ``lstm-xp inspect``: the model's inputs x (n, W, 1),
        targets (n,) in its units, and the raw values of the first window, to show."""
        test = self.split["test"]
        inputs, targets = test.inputs[:n], test.targets[:n]
        return {"x": self.scaler.encode_inputs(inputs),
                "target": self.scaler.encode_targets(inputs, targets)[:, 0],
                "shown": [float(v) for v in inputs[0]], "shown_label": self.value_label()}

    def evaluate(self, model, split: str) -> float:
        part = self.split[split]
        return bl.rmse(self.predict(model, part.inputs), part.targets)

    def baselines(self) -> dict:
        return bl.series_baselines(self.series.values, self.split["train"], self.split["test"],
                                   self.period)

    def baseline_forecasts(self) -> dict:
        """Each baseline's forecasts of the test targets (what :meth:`baselines` scores)."""
        return bl.series_forecasts(self.series.values, self.split["train"], self.split["test"],
                                   self.period)

    def forecast(self, model, steps: int) -> np.ndarray:
        """(steps,) values past the end of the series, one step at a time, each forecast fed
        back as the newest input (errors compound with the horizon)."""
        steps = positive_int_option("steps", steps)
        history = list(self.series.values[-self.window:])
        for _ in range(steps):
            history.append(float(self.predict(model, np.array([history[-self.window:]]))[0]))
        return np.array(history[self.window:])

    def forecast_labels(self, steps: int) -> list:
        """The labels of the next ``steps`` values: the times that follow the series' last
        when its times are regular (``2034-01``, ``2034-02``, ... after ``2033-12``), else
        ``t+1``, ``t+2``, ..."""
        if self.series.step is None:
            return [f"t+{k}" for k in range(1, steps + 1)]
        return self.series.step.after(self.series.labels[-1], steps)

    def predict_text(self, model, steps: int = 10) -> str:
        values = self.forecast(model, steps)
        lines = [f"# {self.series.name}: forecasts after the last value "
                 f"({self.series.labels[-1]}, {self.series.values[-1]:g})"]
        lines += [f"{label}\t{v:.6g}"
                  for label, v in zip(self.forecast_labels(len(values)), values)]
        return "\n".join(lines)

    def export_onnx(self, model, path, metadata: dict):
        """An ONNX graph from "window" (B, W) float64 raw values, oldest first, to "forecast"
        (B,) float64: the one-step forecast in the series' units, what :meth:`predict`
        returns (the scaling of ``data.DeltaScaler`` included)."""
        from ...onnx import GraphBuilder, add_lstm
        g = GraphBuilder(model.lstm.dtype_name)
        f64 = g.onnx.TensorProto.DOUBLE
        window = g.input("window", ["B", self.window], f64)
        last = g.node("Slice", [window, g.axes(-1), g.axes(self.window), g.axes(1)])  # (B, 1)
        scale = g.const("scale", np.array(self.scaler.scale, np.float64))
        encoded = g.node("Div", [g.node("Sub", [window, last]), scale])
        x = g.node("Unsqueeze", [g.node("Cast", [encoded], to=g.elem), g.axes(2)])  # (B, W, 1)
        _, h_n, _ = add_lstm(g, model.lstm, g.to_time_major(x))
        L = model.lstm.num_layers
        top = g.node("Squeeze", [g.slice0(h_n, L - 1, L), g.axes(0)])          # (B, H)
        out = g.node("Cast", [g.linear(top, model.head)], to=f64)             # (B, 1)
        forecast = g.node("Add", [g.node("Squeeze", [last, g.axes(1)]),
                                  g.node("Mul", [g.node("Squeeze", [out, g.axes(1)]), scale])])
        g.output(forecast, "forecast", ["B"], f64)
        return g.save(path, f"lstm_xp_{self.task_name}", {
            "task": self.task_name, "series": self.series.name, "window": self.window,
            "unit": self.series.unit,
            "scale": repr(self.scaler.scale), "last_label": self.series.labels[-1], **metadata})

    def summary_line(self) -> str:
        return (f"{len(self.series.values)} values, window {self.window}, train/val/test "
                f"examples {'/'.join(str(len(self.split[p])) for p in ('train', 'val', 'test'))}")

    def write_outputs(self, model, run_dir, scores: dict, figures: bool) -> list:
        """forecast.png: one-step forecasts of the LSTM and every baseline over the test span."""
        if not figures:
            return []
        from .. import plots
        test = self.split["test"]
        forecasts = {"lstm": self.predict(model, test.inputs), **self.baseline_forecasts()}
        plots.forecast_vs_actual(
            [self.series.labels[i] for i in test.index], test.targets, forecasts,
            {name: scores[name] for name in forecasts},
            f"{self.series.name}: one-step-ahead forecasts on the test span",
            self.value_label(), run_dir / "forecast.png", time_label=self.series.time_name)
        return ["forecast.png"]

    def value_label(self) -> str:
        """What the forecast figure's y axis shows."""
        return self.series.unit or "value"

    def describe(self) -> dict:
        return {"series": self.series.name, "points": len(self.series.values),
                "unit": self.series.unit, "window": self.window,
                "seasonal_period": self.period,
                **{f"{k}_examples": len(v) for k, v in self.split.items()},
                "test_span": [self.series.labels[self.split["test"].index[0]],
                              self.series.labels[self.split["test"].index[-1]]]}
