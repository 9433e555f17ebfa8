"""The series tasks (seed, sunspots, co2; a user's CSV in user_series.py): windows of past
values (and of covariates and time features) -> the next H values, as points or quantiles,
scored per step ahead and per forecast origin against persistence, seasonal-naive and
linear-AR baselines."""

from __future__ import annotations

import math

import numpy as np

from ...losses import MSELoss, PinballLoss
from .. import baselines as bl
from ..baselines import TIE_MARGIN
from .. import forecasting as fc
from ..data import (DeltaScaler, Series, Standardizer, load_series, make_windows,
                    max_window, split_windows, time_split)
from ..models import SeriesForecaster
from ..options import ConfigError, positive_int_option, require
from .base import SimpleTask


def column_names(value, option: str) -> list:
    """Comma-separated names (or a list of them) as a list of distinct, non-empty names."""
    items = value.split(",") if isinstance(value, str) else value
    require(isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items),
            option, "column names, comma-separated (a,b)", value)
    names = [v.strip() for v in items]
    require(names and all(names), option, "column names, comma-separated (a,b), none empty",
            value)
    twice = sorted({v for v in names if names.count(v) > 1})
    if twice:
        raise ConfigError(option, "{name} names {twice} more than once",
                          twice=", ".join(repr(v) for v in twice))
    return names


def _levels(value) -> list:
    """Quantile levels (a comma-separated string or numbers): increasing, in (0, 1), with
    0.5 among them."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        levels = [float(v) for v in items]
    except (TypeError, ValueError):
        levels = None
    require(levels is not None and len(levels) >= 2, "quantiles",
            "two or more numbers, comma-separated (0.1,0.5,0.9)", value)
    require(all(0 < v < 1 for v in levels), "quantiles", "levels each in (0, 1)", value)
    require(all(b > a for a, b in zip(levels, levels[1:])), "quantiles",
            "levels in increasing order, each once", value)
    require(0.5 in levels, "quantiles", "levels that include 0.5 (the median gives the "
            "point forecast that RMSE, MAE and MASE score)", value)
    require(levels[0] < 0.5 < levels[-1], "quantiles", "levels on both sides of 0.5 (an "
            "interval needs one below the median and one above)", value)
    return levels


class ForecastTask(SimpleTask):
    """Forecasting the next H values of a series from a window of past values (a built-in
    one by name, or any :class:`~lstm_xp.job.data.Series`), with, optionally, covariates
    (other columns' past values), time features, quantiles and a rolling-origin backtest.

    The series is cut in time order into train/val/test (70/15/15 %); an example belongs to
    a part when all H of its targets lie inside it. Windows are encoded relative to their
    last value (``data.DeltaScaler``), covariates as z-scores (``data.Standardizer``), both
    fitted on the training part only; time features are sin/cos of the phase in the
    calendar cycle (``TimeStep.time_features``).
    """

    metric = "rmse"
    options = ("window", "horizon", "time_features", "quantiles", "backtest")
    # chosen on the validation split (never on test): see README "Results"
    DEFAULTS = {
        "seed": dict(epochs=50, batch_size=32, hidden_size=32, lr=2e-3, window=32),
        "sunspots": dict(epochs=60, batch_size=16, hidden_size=32, lr=5e-3, window=24),
        "co2": dict(epochs=80, batch_size=16, hidden_size=32, lr=5e-3, window=36),
    }
    FORECAST_DEFAULTS = dict(horizon=1, time_features=False)
    # name -> (type, default, help) of scripts/predict.py's options for this kind
    predict_options = {"steps": (int, 10, "values to forecast past the end of the series "
                                          "(beyond the run's --horizon, forecasts are chained; "
                                          "a run with covariates: at most its horizon, which "
                                          "is then the default)")}

    @classmethod
    def defaults(cls, name: str) -> dict:
        return {**cls.FORECAST_DEFAULTS, **cls.DEFAULTS[name]}

    @classmethod
    def validate(cls, cfg) -> None:
        cfg.window = positive_int_option("window", cfg.window)
        cfg.horizon = positive_int_option("horizon", cfg.horizon)
        require(isinstance(cfg.time_features, bool), "time_features", "true or false",
                cfg.time_features)
        if cfg.quantiles is not None:
            cfg.quantiles = _levels(cfg.quantiles)
        if cfg.backtest is not None:
            cfg.backtest = positive_int_option("backtest", cfg.backtest)

    @staticmethod
    def forecast_options(cfg) -> dict:
        """The keyword arguments of a task's forecasting options, from a config."""
        return dict(horizon=cfg.horizon, covariates=cfg.covariates or (),
                    time_features=cfg.time_features, quantiles=cfg.quantiles,
                    backtest=cfg.backtest)

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.task, cfg.window, **cls.forecast_options(cfg))

    @classmethod
    def from_run(cls, cfg, run_dir, resuming: bool):
        """The task of the saved run in ``run_dir``: a built-in series is built anew."""
        return cls.from_config(cfg)

    def __init__(self, series: Series | str, window: int, fractions=(0.7, 0.15, 0.15), *,
                 horizon: int = 1, covariates=(), time_features: bool = False,
                 quantiles=None, backtest: int | None = None):
        self.series = load_series(series) if isinstance(series, str) else series
        self.task_name = self.series.name
        values = self.series.values
        self.window, self.horizon, self.fractions = window, horizon, fractions
        self.covariates = list(covariates)
        self.quantiles = None if quantiles is None else list(quantiles)
        self.backtest = backtest
        self.cycle = self._time_cycle() if time_features else None
        if max_window(len(values), fractions, horizon) < 1 <= max_window(len(values), fractions):
            raise self._horizon_too_long(fractions)        # (else no window fits: too short)
        if window > max_window(len(values), fractions, horizon):
            raise self._too_long(window, fractions)
        bounds = time_split(len(values), fractions)
        self.train_end = bounds["train"][1]
        missing = [c for c in self.covariates if c not in self.series.covariates]
        if missing:
            raise ConfigError("covariates", "{name}: {missing} not read with the series "
                              "{series!r}", missing=missing, series=self.series.name)
        self.extra = self._raw_features(self.series.labels)          # (n, F)
        self.standardizer = Standardizer(self.extra[:self.train_end, :len(self.covariates)])
        self.split = split_windows(make_windows(values, window, horizon, self.extra), bounds)
        self.scaler = DeltaScaler(values[:self.train_end])
        self.loss = MSELoss() if self.quantiles is None else PinballLoss(self.quantiles)
        self._baseline_forecasts = None
        n_test = len(self.split["test"])
        if backtest is not None and backtest > fc.max_origins(n_test, horizon):
            apart = ("" if horizon == 1 else
                     f", and {fc.max_origins(n_test, horizon)} of them {horizon} steps apart "
                     f"(so that no two forecasts share a target)")
            raise ConfigError(
                "backtest", "{name} {got} asks for more forecast origins than the test span "
                "has: its {span} values hold {n} origin{s} whose {ahead} lie inside it{apart}; "
                "pass {name} {top} or fewer", got=backtest,
                span=bounds["test"][1] - bounds["test"][0], n=n_test,
                s="" if n_test == 1 else "s", apart=apart, top=fc.max_origins(n_test, horizon),
                ahead="next value" if horizon == 1 else f"{horizon} steps ahead")

    def _time_cycle(self) -> str:
        step = self.series.step
        cycle = None if step is None else step.cycle()
        if cycle is None:
            labels = self.series.labels
            has = (f"no times that name a month, day or hour (its labels run {labels[0]} .. "
                   f"{labels[-1]})" if step is None or step.kind == "number" else
                   f"times {step.describe()}")
            raise ConfigError("time_features", "{name} needs times that go round a calendar "
                              "cycle (monthly or quarterly: month of year; daily: day of week; "
                              "hourly or finer: hour of day), but the series {series!r} has "
                              "{has}", series=self.series.name, has=has)
        return cycle

    def _raw_features(self, labels) -> np.ndarray:
        """(len(labels), F) the input features besides the target, unscaled: the
        covariates' values (for the series' own labels only), then the time features."""
        columns = [self.series.covariates[c][:, None] for c in self.covariates]
        if self.cycle is not None:
            columns.append(self.series.step.time_features(labels))
        return np.hstack(columns) if columns else np.zeros((len(labels), 0))

    @property
    def feature_names(self) -> list:
        """The model's input features after the target's own (scaled) window."""
        cyc = {"month of year": "month", "day of week": "weekday", "hour of day": "hour"}
        time = ([] if self.cycle is None else
                [f"{cyc[self.cycle]}_sin", f"{cyc[self.cycle]}_cos"])
        return self.covariates + time

    @property
    def train_loss(self) -> str:
        what = ("pinball loss of the quantiles " + ",".join(f"{q:g}" for q in self.quantiles)
                if self.quantiles else "MSE")
        ahead = ("one-step change" if self.horizon == 1 else
                 f"changes 1..{self.horizon} steps ahead")
        return f"{what} of the scaled {ahead}"

    def _horizon_too_long(self, fractions) -> ConfigError:
        """The error for a horizon that leaves some part no example, whatever the window."""
        n = len(self.series.values)
        top = max(h for h in range(1, n) if max_window(n, fractions, h) >= 1)
        sizes = [hi - lo for lo, hi in time_split(n, fractions).values()]
        return ConfigError("horizon", "{name} {got} is too long for the {n}-value series "
                           "{series!r}: its train/validation/test parts ({sizes} values) "
                           "must each hold {got} values to forecast (the training part a "
                           "window before them, too); {name} can be at most {top}",
                           got=self.horizon, n=n, series=self.series.name,
                           sizes="/".join(map(str, sizes)), top=top)

    def _too_long(self, window: int, fractions) -> ConfigError:
        """The error for a window that leaves some part of the series no example."""
        n = len(self.series.values)
        top = max_window(n, fractions, self.horizon)
        ahead = "" if self.horizon == 1 else f" with {{opt[horizon]}} {self.horizon}"
        return ConfigError("window", "{name} must be in [1, {top}]" + ahead + " for the "
                           "{n}-value series {series!r}: its training part (the first {a} "
                           "values) must hold a window and the {after} after it; got "
                           "{got}", top=top, n=n, series=self.series.name,
                           a=time_split(n, fractions)["train"][1], got=window,
                           after="value" if self.horizon == 1 else f"{self.horizon} values")

    @property
    def period(self) -> int | None:
        """The seasonal period of the seasonal_naive baseline (None: no such baseline)."""
        return self.series.period

    def build_model(self, cfg):
        return SeriesForecaster(cfg.hidden_size, cfg.num_layers, dtype=cfg.dtype,
                                device=cfg.device, seed=cfg.seed, dropout=cfg.dropout,
                                input_size=1 + len(self.feature_names), horizon=self.horizon,
                                quantiles=self.quantiles, **cfg.cell_options())

    def steps_per_epoch(self, cfg) -> int:
        return math.ceil(len(self.split["train"]) / cfg.batch_size)

    def encode(self, inputs: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """The model's input x (N, W, 1 + F) from raw windows (N, W) and their raw other
        features (N, W, F): the scaled window, the covariates' z-scores, the time features."""
        C = len(self.covariates)
        covs = self.standardizer.encode(extra[..., :C]) if C else extra[..., :0]
        return np.concatenate([self.scaler.encode_inputs(inputs), covs, extra[..., C:]],
                              axis=2)

    def batches(self, rng, cfg):
        train = self.split["train"]
        x = self.encode(train.inputs, train.extra).astype(cfg.dtype)
        y = self.scaler.encode_targets(train.inputs, train.targets).astype(cfg.dtype)
        order = rng.permutation(len(train))
        for start in range(0, len(order), cfg.batch_size):
            pick = order[start:start + cfg.batch_size]
            yield x[pick], y[pick]

    def reset_state(self) -> None:
        """Nothing to forget: every window is forecast from a zero state."""

    def predict(self, model, inputs: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Raw windows (N, W) and their raw other features (N, W, F; None when F = 0) ->
        forecasts in the series' units: (N, H), or (N, H, Q) quantiles."""
        if extra is None:
            extra = np.zeros(inputs.shape + (0,))
        dtype = model.lstm.dtype_name
        out = model.forward(self.encode(inputs, extra).astype(dtype), train=False)
        return self.scaler.decode(inputs, model.backend.to_numpy(out))

    def point(self, forecasts: np.ndarray) -> np.ndarray:
        """(N, H) point forecasts of :meth:`predict`'s output: the median of quantiles."""
        if self.quantiles is None:
            return forecasts
        return forecasts[..., self.quantiles.index(0.5)]

    def inspection(self, n: int) -> dict:
        """Up to ``n`` test windows for ``lstm-xp inspect``: the model's inputs x
        (n, W, 1 + F), the first step ahead's targets (n,) in its units, and the raw values
        of the first window, to show."""
        test = self.split["test"]
        inputs, targets = test.inputs[:n], test.targets[:n]
        return {"x": self.encode(inputs, test.extra[:n]),
                "target": self.scaler.encode_targets(inputs, targets)[:, 0],
                "shown": [float(v) for v in inputs[0]], "shown_label": self.value_label()}

    def evaluate(self, model, split: str) -> float:
        """RMSE over every example and step ahead (the median's, for quantiles)."""
        part = self.split[split]
        return bl.rmse(self.point(self.predict(model, part.inputs, part.extra)), part.targets)

    def baselines(self) -> dict:
        return {name: bl.rmse(pred, self.split["test"].targets)
                for name, pred in self.baseline_forecasts().items()}

    def baseline_forecasts(self) -> dict:
        """Each baseline's (N, H) forecasts of the test targets (what :meth:`baselines`
        scores); fitted once, since they depend on the data alone (the scores, the report
        and the figure all ask)."""
        if self._baseline_forecasts is None:
            split = self.split
            self._baseline_forecasts = bl.series_forecasts(
                self.series.values, split["train"], split["val"], split["test"], self.period)
        return self._baseline_forecasts

    def test_report(self, model) -> dict:
        """What a forecasting run adds to metrics.json, and the verdict when a backtest
        decides it: {"metrics": {...}, "verdict": {baseline: ...} or None, "lines": [...]}.

        metrics: "horizon"; "test_by_step" {model: {"rmse", "mae", "mase"}: H values each};
        "test_scores" {model: {"rmse", "mae", "mase"}} over all steps; "mase_scale";
        with quantiles, "quantiles" and "intervals" (``forecasting.interval_coverage``);
        with a backtest, "backtest" {"origins", "origin_labels" (the last value seen at
        each origin), "steps_ahead", "rmse": {model: {"mean", "std"}}, "rmse_by_origin",
        "verdict", "verdict_rule"}.
        """
        test = self.split["test"]
        raw = self.predict(model, test.inputs, test.extra)
        forecasts = {"lstm": self.point(raw), **self.baseline_forecasts()}
        mase = fc.mase_scale(self.series.values[:self.train_end], self.period)
        scale = mase["value"]
        metrics = {
            "horizon": self.horizon,
            "test_by_step": {m: fc.errors_by_step(f, test.targets, scale)
                             for m, f in forecasts.items()},
            "test_scores": {m: fc.overall_errors(f, test.targets, scale)
                            for m, f in forecasts.items()},
            "mase_scale": mase}
        lines = []
        if self.horizon > 1:
            shown = sorted({1, (self.horizon + 1) // 2, self.horizon})
            lines.append("test RMSE by step ahead:" + "".join(
                f"{'step ' + str(k):>12}" for k in shown))
            for m, scores in metrics["test_by_step"].items():
                lines.append(f"  {m:<22}" + "".join(f"{scores['rmse'][k - 1]:>12.5g}"
                                                   for k in shown))
        if self.quantiles is not None:
            metrics["quantiles"] = self.quantiles
            metrics["intervals"] = fc.interval_coverage(raw, test.targets, self.quantiles)
            for band, c in metrics["intervals"].items():
                lines.append(f"interval {band}: {c['coverage']:.1%} of the test targets inside"
                             f" (nominal {c['nominal']:.0%})")
        verdict = None
        if self.backtest is not None:
            origins = fc.backtest_origins(len(test), self.backtest)
            per_origin = {m: fc.per_origin_rmse(f[origins], test.targets[origins])
                          for m, f in forecasts.items()}
            verdict = {m: fc.paired_verdict(per_origin["lstm"], r, TIE_MARGIN)
                       for m, r in per_origin.items() if m != "lstm"}
            metrics["backtest"] = {
                "origins": len(origins),
                "origin_labels": [self.series.labels[test.index[i] - 1] for i in origins],
                "steps_ahead": self.horizon,
                "rmse": {m: {"mean": float(r.mean()), "std": float(r.std(ddof=1))
                             if len(r) > 1 else 0.0} for m, r in per_origin.items()},
                "rmse_by_origin": {m: r.tolist() for m, r in per_origin.items()},
                "verdict": verdict,
                "verdict_rule": f"beats: mean RMSE lower by more than {TIE_MARGIN:.0%} and "
                                f"the mean paired difference over the origins above twice "
                                f"its standard error; beaten by: the same the other way; "
                                f"else a tie"}
            lines.append(f"backtest: {len(origins)} forecast origins over the test span, "
                         f"{self.horizon} step{'s' if self.horizon > 1 else ''} ahead each "
                         f"(the model fitted once); RMSE mean +- std:")
            for m, r in metrics["backtest"]["rmse"].items():
                said = "" if m == "lstm" else "   lstm " + {
                    "beats": "beats it", "ties": "ties with it",
                    "beaten by": "is beaten by it"}[verdict[m]]
                lines.append(f"  {m:<22}{r['mean']:>12.5g} +- {r['std']:<10.3g}{said}"
                             .rstrip())
        return {"metrics": metrics, "verdict": verdict, "lines": lines,
                "verdict_basis": None if verdict is None else
                f"by the backtest over {self.backtest} origins"}

    def _future_features(self, labels_after: list) -> np.ndarray:
        """(n, F) time features of the times after the series' end (no covariates)."""
        if self.cycle is None:
            return np.zeros((len(labels_after), 0))
        return self.series.step.time_features(labels_after)

    def forecast(self, model, steps: int) -> np.ndarray:
        """(steps,) point forecasts past the end of the series (see
        :meth:`forecast_with_quantiles`)."""
        return self.forecast_with_quantiles(model, steps)[0]

    def forecast_with_quantiles(self, model, steps: int) -> tuple:
        """(values (steps,), quantiles (min(steps, H), Q) or None) past the end of the
        series: one direct forecast of H values from the last window; beyond H, forecasts
        chained, each block of H made from a window that ends in earlier forecasts
        (medians), so errors compound. Covariates are not known after the series' last
        value, so a run with covariates forecasts at most H values."""
        steps = positive_int_option("steps", steps)
        if steps > self.horizon and self.covariates:
            raise ConfigError("steps", "{name} {got} is more than the run's horizon "
                              "({horizon}): beyond it, forecasts are chained from earlier "
                              "forecasts, which needs the covariates' values after the "
                              "series' last line, and they are not known; pass {name} "
                              "{horizon} or fewer", got=steps, horizon=self.horizon)
        W, H = self.window, self.horizon
        history = list(self.series.values[-W:])
        extra = list(self.extra[-W:])
        future = self._future_features(self.forecast_labels(steps + H))
        first = None
        done = 0
        while done < steps:
            raw = self.predict(model, np.array([history[-W:]]), np.array([extra[-W:]]))[0]
            if first is None:
                first = raw
            block = self.point(raw[None])[0]
            history.extend(block.tolist())
            extra.extend(future[done:done + H])
            done += H
        quantiles = None if self.quantiles is None else first[:min(steps, H)]
        return np.array(history[W:W + steps]), quantiles

    def forecast_labels(self, steps: int) -> list:
        """The labels of the next ``steps`` values: the times that follow the series' last
        when its times are regular (``2034-01``, ``2034-02``, ... after ``2033-12``), else
        ``t+1``, ``t+2``, ..."""
        if self.series.step is None:
            return [f"t+{k}" for k in range(1, steps + 1)]
        return self.series.step.after(self.series.labels[-1], steps)

    def predict_text(self, model, steps: int | None = None) -> str:
        """What ``lstm-xp predict`` prints: ``steps`` forecasts (default 10, or the horizon
        for a run with covariates, which cannot chain)."""
        if steps is None:
            steps = self.horizon if self.covariates else max(10, self.horizon)
        values, quantiles = self.forecast_with_quantiles(model, steps)
        H = self.horizon
        lines = [f"# {self.series.name}: forecasts after the last value "
                 f"({self.series.labels[-1]}, {self.series.values[-1]:g})"]
        if self.covariates:
            lines.append(f"# a run with covariates forecasts at most its horizon ({H}): "
                         f"their values after the last line, which chaining would need, "
                         f"are not known")
        if steps > H and H == 1:
            lines.append("# one step at a time: each forecast after the first comes from a "
                         "window that holds earlier forecasts (chained), so errors compound"
                         + ("; quantiles for the first only" if quantiles is not None else ""))
        elif steps > H:
            lines.append(f"# the first {H} from the last window at once (--horizon {H}); "
                         f"the rest chained, each block of {H} forecast from a window "
                         f"holding earlier forecasts, so errors compound"
                         + ("; quantiles for the direct steps only" if quantiles is not None
                            else ""))
        if quantiles is not None:
            lines.append("# time\tforecast (median)\t" +
                         "\t".join(f"q{q:g}" for q in self.quantiles))
        for k, (label, v) in enumerate(zip(self.forecast_labels(len(values)), values)):
            row = f"{label}\t{v:.6g}"
            if quantiles is not None:
                row += "\t" + "\t".join(f"{q:.6g}" for q in quantiles[k]) if k < H else \
                    "\t-" * len(self.quantiles)
            if k >= H:
                row += "\t(chained)"
            lines.append(row)
        return "\n".join(lines)

    def export_onnx(self, model, path, metadata: dict):
        """An ONNX graph of :meth:`predict`, the scaling included. Inputs, float64, oldest
        step first: "window" (B, W) the target's raw values; with covariates,
        "covariates" (B, W, C) their raw values (columns in the run's order); with time
        features, "time_features" (B, W, 2) their sin and cos (metadata "time_features"
        names the cycle). Outputs, float64, in the series' units: "forecast", (B,) for a
        horizon of 1, else (B, H) (the median, with quantiles); with quantiles,
        "quantiles" (B, H, Q)."""
        from ...onnx import GraphBuilder, add_lstm
        g = GraphBuilder(model.lstm.dtype_name)
        f64 = g.onnx.TensorProto.DOUBLE
        W, H, C = self.window, self.horizon, len(self.covariates)

        def last_axis(value, lo, hi, axis):
            return g.node("Slice", [value, g.const("lo", np.array([lo], np.int64)),
                                    g.const("hi", np.array([hi], np.int64)), g.axes(axis)])

        window = g.input("window", ["B", W], f64)
        last = last_axis(window, W - 1, W, 1)                                   # (B, 1)
        scale = g.const("scale", np.array(self.scaler.scale, np.float64))
        parts = [g.node("Unsqueeze", [g.node("Div", [g.node("Sub", [window, last]), scale]),
                                      g.axes(2)])]                               # (B, W, 1)
        if C:
            cov = g.input("covariates", ["B", W, C], f64)
            parts.append(g.node("Div", [
                g.node("Sub", [cov, g.const("cov_mean", self.standardizer.mean[:C])]),
                g.const("cov_std", self.standardizer.std[:C])]))
        if self.cycle is not None:
            parts.append(g.input("time_features", ["B", W, 2], f64))
        x = parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=2)
        _, h_n, _ = add_lstm(g, model.lstm, g.to_time_major(g.node("Cast", [x], to=g.elem)))
        L = model.lstm.num_layers
        top = g.node("Squeeze", [g.slice0(h_n, L - 1, L), g.axes(0)])          # (B, hidden)
        z = g.node("Cast", [g.linear(top, model.head)], to=f64)                # (B, H * Q)
        if self.quantiles is None:
            forecast = g.node("Add", [last, g.node("Mul", [z, scale])])          # (B, H)
        else:
            Q = len(self.quantiles)
            z = g.node("Reshape", [z, g.const("shape", np.array([-1, H, Q], np.int64))])
            rest = last_axis(z, 1, Q, 2)
            softplus = g.node("Add", [g.node("Relu", [rest]), g.node("Log", [g.node("Add", [
                g.const("one", np.array(1.0)), g.node("Exp", [g.node("Neg", [
                    g.node("Abs", [rest])])])])])])
            steps = g.node("Concat", [last_axis(z, 0, 1, 2), softplus], axis=2)
            q = g.node("CumSum", [steps, g.const("axis", np.array(2, np.int64))])
            quantiles = g.node("Add", [g.node("Unsqueeze", [last, g.axes(2)]),
                                       g.node("Mul", [q, scale])])               # (B, H, Q)
            m = self.quantiles.index(0.5)
            forecast = g.node("Squeeze", [last_axis(quantiles, m, m + 1, 2), g.axes(2)])
        if H == 1:
            g.output(g.node("Squeeze", [forecast, g.axes(1)]), "forecast", ["B"], f64)
        else:
            g.output(forecast, "forecast", ["B", H], f64)
        if self.quantiles is not None:                      # outputs: forecast, quantiles
            g.output(quantiles, "quantiles", ["B", H, len(self.quantiles)], f64)
        facts = {"task": self.task_name, "series": self.series.name, "window": W,
                 "horizon": H, "unit": self.series.unit, "scale": repr(self.scaler.scale),
                 "last_label": self.series.labels[-1]}
        if C:
            facts["covariates"] = ",".join(self.covariates)
        if self.cycle is not None:
            facts["time_features"] = (f"sin and cos of 2 pi x the phase in the {self.cycle} "
                                      f"(0 at its start)")
        if self.quantiles is not None:
            facts["quantiles"] = ",".join(f"{q:g}" for q in self.quantiles)
        return g.save(path, f"lstm_xp_{self.task_name}", {**facts, **metadata})

    def summary_line(self) -> str:
        parts = [f"{len(self.series.values)} values, window {self.window}"]
        if self.horizon > 1:
            parts.append(f"horizon {self.horizon}")
        if self.feature_names:
            parts.append(f"other inputs {', '.join(self.feature_names)}")
        if self.quantiles is not None:
            parts.append("quantiles " + ",".join(f"{q:g}" for q in self.quantiles))
        parts.append("train/val/test examples "
                     + "/".join(str(len(self.split[p])) for p in ("train", "val", "test")))
        if self.backtest is not None:
            parts.append(f"backtest over {self.backtest} origins")
        return ", ".join(parts)

    def write_outputs(self, model, run_dir, scores: dict, figures: bool) -> list:
        """forecast.png: the first step ahead's forecasts of the LSTM and every baseline
        over the test span (with the LSTM's widest quantile band), and for H > 1 each
        model's RMSE by step ahead."""
        if not figures:
            return []
        from .. import plots
        test = self.split["test"]
        raw = self.predict(model, test.inputs, test.extra)
        forecasts = {"lstm": self.point(raw), **self.baseline_forecasts()}
        band = None
        if self.quantiles is not None and fc.central_bands(self.quantiles):
            lo, hi = fc.central_bands(self.quantiles)[0]
            band = (raw[:, 0, lo], raw[:, 0, hi],
                    f"lstm {fc.band_name(self.quantiles, lo, hi)} band")
        by_step = None
        if self.horizon > 1:
            by_step = {m: fc.errors_by_step(f, test.targets, None)["rmse"]
                       for m, f in forecasts.items()}
        ahead = ("one-step-ahead forecasts" if self.horizon == 1 else
                 f"forecasts 1 step ahead (of {self.horizon})")
        plots.forecast_vs_actual(
            [self.series.labels[i] for i in test.index], test.targets[:, 0],
            {m: f[:, 0] for m, f in forecasts.items()},
            {m: bl.rmse(f[:, 0], test.targets[:, 0]) for m, f in forecasts.items()},
            f"{self.series.name}: {ahead} on the test span",
            self.value_label(), run_dir / "forecast.png", time_label=self.series.time_name,
            band=band, by_step=by_step)
        return ["forecast.png"]

    def value_label(self) -> str:
        """What the forecast figure's y axis shows."""
        return self.series.unit or "value"

    def describe(self) -> dict:
        return {"series": self.series.name, "points": len(self.series.values),
                "unit": self.series.unit, "window": self.window, "horizon": self.horizon,
                "covariates": self.covariates, "time_features": self.cycle,
                "seasonal_period": self.period,
                **{f"{k}_examples": len(v) for k, v in self.split.items()},
                "test_span": [self.series.labels[self.split["test"].index[0]],
                              self.series.labels[self.split["test"].index[-1]
                                                 + self.horizon - 1]]}
