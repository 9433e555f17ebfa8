"""Forecasting as practitioners do it: H steps ahead, covariates, time features, quantile
intervals, rolling-origin backtests. Witnesses: scores recomputed by hand from the series,
central differences and torch autograd for the multi-output and quantile heads, ONNX
Runtime for the exported graph, a synthetic series whose answer is known, and one exact
``error:`` line for every refused combination."""

import json

import numpy as np
import pytest

from cases import numeric_gradient
from lstm_xp import MSELoss, PinballLoss
from lstm_xp.job import cli
from lstm_xp.job import forecasting as fc
from lstm_xp.job.csv_series import TimeStep
from lstm_xp.job.models import SeriesForecaster
from lstm_xp.job.train import TrainConfig, load_run, resume, train

QUIET = dict(progress=False, echo=lambda *_: None)
TAUS = [0.1, 0.5, 0.9]


def months(n, start=2020):
    return [f"{start + k // 12:04d}-{k % 12 + 1:02d}" for k in range(n)]


def covariate_csv(path, n=400, seed=0, noise=0.1):
    """month,y,x,z: x white noise, y_t = 2 x_{t-1} + noise (y is noise but for x's past),
    z unrelated."""
    rng = np.random.default_rng(seed)
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    y = np.r_[0.0, 2 * x[:-1]] + noise * rng.standard_normal(n)
    lines = ["month,y,x,z"] + [f"{t},{a:.6f},{b:.6f},{c:.6f}"
                               for t, a, b, c in zip(months(n), y, x, z)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fails(argv, capsys) -> str:
    """The one stderr line of a refused command line (exit status 2)."""
    assert cli.train_main([*argv, "--out", "run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.rstrip("\n")


# ----------------------------------------------------------------- scoring by hand
def test_scores_by_step_and_their_scale_by_hand():
    targets = np.array([[1.0, 2.0], [3.0, 4.0]])
    forecasts = np.array([[2.0, 2.0], [3.0, 1.0]])        # errors [1, 0], [0, -3]
    got = fc.errors_by_step(forecasts, targets, scale=2.0)
    assert got["rmse"] == pytest.approx([np.sqrt(0.5), np.sqrt(4.5)])
    assert got["mae"] == pytest.approx([0.5, 1.5]) and got["mase"] == pytest.approx([0.25, 0.75])
    # in-sample seasonal naive, m = 2: |3-1|, |2-5|, |7-3| -> mean 3; no period: naive steps
    assert fc.mase_scale(np.array([1.0, 5.0, 3.0, 2.0, 7.0]), 2)["value"] == pytest.approx(3.0)
    assert fc.mase_scale(np.array([1.0, 2.0, 4.0]), None)["value"] == pytest.approx(1.5)
    short = fc.mase_scale(np.array([1.0, 2.0, 4.0]), 5)        # no full season: naive
    assert short["value"] == pytest.approx(1.5) and short["period"] == 1 and "note" in short
    flat = fc.mase_scale(np.ones(6), 2)                        # MASE undefined, not 1/0
    assert flat["value"] is None
    assert fc.errors_by_step(forecasts, targets, None)["mase"] == [None, None]


def test_interval_coverage_counts_targets_inside_each_central_band():
    q = np.zeros((4, 1, 5))
    q[..., :] = [-2, -1, 0, 1, 2]                         # levels .05 .25 .5 .75 .95
    targets = np.array([[-1.5], [0.5], [3.0], [1.0]])
    got = fc.interval_coverage(q, targets, [0.05, 0.25, 0.5, 0.75, 0.95])
    assert list(got) == ["0.05-0.95", "0.25-0.75"]
    assert got["0.05-0.95"]["nominal"] == pytest.approx(0.9)
    assert got["0.05-0.95"]["coverage"] == 0.75           # all but 3.0
    assert got["0.25-0.75"]["coverage"] == 0.5            # 0.5 and 1.0 (inclusive)


def test_backtest_origins_spread_from_first_to_last_and_the_paired_verdict():
    assert fc.backtest_origins(10, 4).tolist() == [0, 3, 6, 9]
    assert len(set(fc.backtest_origins(7, 7).tolist())) == 7
    assert fc.backtest_origins(10, 1).tolist() == [9]
    for n in range(1, 60):                     # at most max_origins: never closer than H
        for h in range(1, 8):
            k = fc.max_origins(n, h)
            assert k == len(range(0, n, h))
            if k > 1:
                assert np.diff(fc.backtest_origins(n, k)).min() >= h, (n, h)
    steady = np.array([1.0, 1.1, 0.9, 1.0])
    assert fc.paired_verdict(steady, steady + 0.5, 0.05) == "beats"
    assert fc.paired_verdict(steady + 0.5, steady, 0.05) == "beaten by"
    # lower on average by 25 %, but as often worse as better: the spread says tie
    assert fc.paired_verdict(np.array([0.1, 2.0, 0.1, 2.0]), np.array([2.0, 0.1, 2.0, 0.9]),
                             0.05) == "ties"


def test_time_features_are_the_phase_of_the_calendar_cycle():
    monthly = TimeStep("months", 1, "month")
    f = monthly.time_features(["2031-01", "2031-04", "2031-07"])
    np.testing.assert_allclose(f, [[0, 1], [1, 0], [0, -1]], atol=1e-12)
    daily = TimeStep("seconds", 86400, "date")
    f = daily.time_features(["2031-07-07", "2031-07-09"])          # a Monday, a Wednesday
    np.testing.assert_allclose(f[:, 0], np.sin(2 * np.pi * np.array([0, 2]) / 7), atol=1e-12)
    assert TimeStep("seconds", 3600, "minute").cycle() == "hour of day"
    assert TimeStep("months", 12, "month").cycle() is None            # yearly: no cycle


# ---------------------------------------------------------------- the heads' gradients
@pytest.mark.parametrize("quantiles", [None, TAUS])
def test_multi_output_head_gradients_match_central_differences(quantiles, rng):
    model = SeriesForecaster(3, 1, dtype="float64", seed=0, input_size=2, horizon=3,
                             quantiles=quantiles)
    x, y = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 3))
    loss = MSELoss() if quantiles is None else PinballLoss(quantiles)

    def value():
        return float(loss.forward(model.forward(x, train=False), y))

    model.zero_grad()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    for name in ("head.weight", "head.bias", "lstm.weight_hh_l0", "lstm.bias_ih_l0"):
        param = model.params[name]
        np.testing.assert_allclose(model.grads[name], numeric_gradient(value, param),
                                   rtol=1e-5, atol=1e-8, err_msg=name)


def test_quantile_forecaster_matches_torch(torch, rng):
    """The whole model, LSTM + head + monotone quantiles + pinball loss, against the same
    written in torch with the weights copied by name."""
    H, Q = 2, len(TAUS)
    model = SeriesForecaster(4, 2, dtype="float64", seed=3, input_size=3, horizon=H,
                             quantiles=TAUS)
    x, y = rng.standard_normal((5, 6, 3)), rng.standard_normal((5, H))
    loss = PinballLoss(TAUS)
    model.zero_grad()
    value = float(loss.forward(model.forward(x), y))
    model.backward(loss.backward())
    lstm = torch.nn.LSTM(3, 4, 2, batch_first=True).double()
    head = torch.nn.Linear(4, H * Q).double()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            p.copy_(torch.tensor(model.params[f"lstm.{name}"]))
        for name, p in head.named_parameters():
            p.copy_(torch.tensor(model.params[f"head.{name}"]))
    _, (h_n, _) = lstm(torch.tensor(x))
    z = head(h_n[-1]).reshape(-1, H, Q)
    q = torch.cumsum(torch.cat([z[..., :1], torch.nn.functional.softplus(z[..., 1:])], -1), -1)
    e = torch.tensor(y)[..., None] - q
    tau = torch.tensor(TAUS, dtype=torch.float64)
    ref = torch.maximum(tau * e, (tau - 1) * e).mean()
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    for name, p in [*(("lstm." + n, p) for n, p in lstm.named_parameters()),
                    *(("head." + n, p) for n, p in head.named_parameters())]:
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-13,
                                   err_msg=name)


def test_inspected_gradient_of_a_quantile_model_is_its_medians_mse(rng):
    model = SeriesForecaster(5, 1, dtype="float64", seed=0, input_size=1, horizon=2,
                             quantiles=TAUS)
    x, target = rng.standard_normal((4, 7, 1)), rng.standard_normal(4)
    dy, dstate = model.lstm_gradients(x, target)
    model.lstm.forward(x)
    model.lstm.backward(dy, dstate)
    ours = {k: v.copy() for k, v in model.lstm.grads.items()}
    model.zero_grad()
    out = model.forward(x)                                 # (B, H, Q)
    d_out = np.zeros_like(out)
    d_out[:, 0, 1] = 2 * (out[:, 0, 1] - target) / len(target)     # the median, step 1
    model.backward(d_out)
    for k, v in model.lstm.grads.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-12, atol=1e-15, err_msg=k)


# ------------------------------------------------------------------ runs, end to end
def test_a_horizon_run_scores_every_step_against_baselines_computed_by_hand(here):
    result = train(TrainConfig(task="co2", epochs=2, hidden_size=8, horizon=6, backtest=5),
                   here / "run", **QUIET)
    m, task = result.metrics, result.task
    test = task.split["test"]
    values, idx = task.series.values, test.index
    assert m["horizon"] == 6 and test.targets.shape == (len(test), 6)
    k = np.arange(6)
    persistence = np.repeat(values[idx - 1, None], 6, axis=1)
    seasonal = values[idx[:, None] + k - 12]
    for name, pred in (("persistence", persistence), ("seasonal_naive", seasonal)):
        err = pred - values[idx[:, None] + k]
        assert m["test_by_step"][name]["rmse"] == pytest.approx(
            np.sqrt(np.mean(err ** 2, axis=0)).tolist())
        assert m["baselines"][name] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    scale = np.mean(np.abs(values[12:task.train_end] - values[:task.train_end - 12]))
    assert m["mase_scale"]["value"] == pytest.approx(scale) and m["mase_scale"]["period"] == 12
    lstm = task.point(task.predict(result.model, test.inputs, test.extra))
    assert m["test_rmse"] == pytest.approx(np.sqrt(np.mean((lstm - test.targets) ** 2)))
    assert m["test_by_step"]["lstm"]["mase"] == pytest.approx(
        (np.mean(np.abs(lstm - test.targets), axis=0) / scale).tolist())
    bt = m["backtest"]
    origins = np.array([0, 18, 37, 55, 73])     # 73 k / 4 rounded half up (74 origins)
    assert len(test) == 74
    per = np.sqrt(np.mean((persistence[origins] - test.targets[origins]) ** 2, axis=1))
    assert bt["origins"] == 5
    assert bt["rmse"]["persistence"]["mean"] == pytest.approx(per.mean())
    assert bt["rmse"]["persistence"]["std"] == pytest.approx(per.std(ddof=1))
    assert bt["rmse_by_origin"]["persistence"] == pytest.approx(per.tolist())
    assert bt["origin_labels"][0] == task.series.labels[idx[0] - 1]
    assert set(bt["verdict"]) == {"persistence", "seasonal_naive", "linear_ar"}
    verdicts = {"beats": "lstm_beats", "ties": "ties", "beaten by": "beaten_by"}
    for name, said in bt["verdict"].items():
        assert name in m[verdicts[said]]
    assert json.loads((here / "run" / "metrics.json").read_text())["horizon"] == 6


def test_quantile_run_reports_coverage_and_predict_prints_the_quantiles(here, capsys):
    assert cli.train_main(["--task", "seed", "--epochs", "2", "--hidden-size", "8",
                           "--horizon", "3", "--quantiles", "0.1,0.5,0.9", "--out", "run",
                           "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "interval 0.1-0.9:" in out and "pinball loss of the quantiles 0.1,0.5,0.9" in out
    m = json.loads((here / "run" / "metrics.json").read_text())
    _, task, model = load_run("run")
    test = task.split["test"]
    q = task.predict(model, test.inputs, test.extra)
    assert q.shape == (len(test), 3, 3) and np.all(np.diff(q, axis=-1) > 0)
    inside = (q[..., 0] <= test.targets) & (test.targets <= q[..., 2])
    assert m["intervals"]["0.1-0.9"] == {"nominal": 0.8, "coverage": pytest.approx(
        inside.mean()), "coverage_by_step": pytest.approx(inside.mean(axis=0).tolist())}
    assert m["test_rmse"] == pytest.approx(np.sqrt(np.mean((q[..., 1] - test.targets) ** 2)))
    assert cli.predict_main(["run", "--steps", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "# time\tforecast (median)\tq0.1\tq0.5\tq0.9"
    rows = [line.split("\t") for line in lines[3:]]
    assert [len(r) for r in rows] == [5, 5, 5, 6, 6]             # quantiles: direct steps
    assert rows[3][2:] == ["-", "-", "-", "(chained)"]
    assert rows[0][1] == rows[0][3]                               # the median is printed
    values, first = task.forecast_with_quantiles(model, 5)
    assert [float(r[1]) for r in rows] == pytest.approx(values, rel=1e-5)
    # steps 4-5 come from the window that ends with the first block's medians
    window = np.r_[task.series.values[-task.window + 3:], values[:3]]
    assert task.point(task.predict(model, window[None]))[0, :2] == pytest.approx(
        values[3:], rel=1e-9)
    assert cli.inspect_main(["run"]) == 0                     # looks inside a quantile model
    info = json.loads((here / "run" / "inspect" / "inspect.json").read_text())
    assert "median" in info["loss"]


def test_covariates_make_a_known_relation_learnable(here):
    """y_t = 2 x_{t-1} + noise: without x the target is noise; with it, nearly exact."""
    covariate_csv(here / "s.csv")
    common = dict(series="s.csv", column="y", epochs=25, hidden_size=16, window=4, lr=0.01,
                  batch_size=16)
    blind = train(TrainConfig(**common), here / "a", **QUIET).metrics
    sees = train(TrainConfig(**common, covariates="x"), here / "b", **QUIET).metrics
    assert sees["data"]["covariates"] == ["x"]
    assert sees["test_rmse"] < 0.3 * blind["test_rmse"]
    assert blind["test_rmse"] > 1.5                      # the target's std is about 2


def test_time_features_and_covariates_together_predict_export_and_resume(here, capsys):
    covariate_csv(here / "s.csv", n=200)
    argv = ["--series", "s.csv", "--covariates", "x,z", "--time-features", "--horizon", "2",
            "--quantiles", "0.25,0.5,0.75", "--backtest", "4", "--epochs", "1",
            "--hidden-size", "4", "--window", "5", "--no-progress"]
    assert cli.train_main([*argv, "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "other inputs x, z, month_sin, month_cos" in out
    assert ("same test points for every model; the verdict is by the backtest over 4 origins "
            "(above), not these pooled scores:") in out
    cfg, task, model = load_run("run")
    assert cfg.covariates == ["x", "z"] and cfg.quantiles == [0.25, 0.5, 0.75]
    test = task.split["test"]
    assert test.extra.shape == (len(test), 5, 4)
    np.testing.assert_array_equal(test.extra[0, :, 0], task.series.covariates["x"][
        test.index[0] - 5:test.index[0]])
    assert cli.predict_main(["run"]) == 0              # the default: the horizon, 2 values
    out = capsys.readouterr().out.splitlines()
    assert len([r for r in out if r[:1] != "#"]) == 2
    assert out[1] == ("# a run with covariates forecasts at most its horizon (2): their "
                      "values after the last line, which chaining would need, are not known")
    assert cli.predict_main(["run", "--steps", "3"]) == 2
    assert capsys.readouterr().err == (
        "error: --steps 3 is more than the run's horizon (2): beyond it, forecasts are chained "
        "from earlier forecasts, which needs the covariates' values after the series' last "
        "line, and they are not known; pass --steps 2 or fewer\n")
    result = resume("run", epochs=2, **QUIET)
    assert len(result.history) == 2 and result.metrics["backtest"]["origins"] == 4
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    assert cli.export_main(["run", "run.onnx"]) == 0
    _, task, model = load_run("run")
    session = ort.InferenceSession("run.onnx", providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["covariates"] == "x,z" and meta["quantiles"] == "0.25,0.5,0.75"
    assert meta["horizon"] == "2" and "month of year" in meta["time_features"]
    feeds = {"window": test.inputs, "covariates": test.extra[..., :2],
             "time_features": test.extra[..., 2:]}
    forecast, quantiles = session.run(["forecast", "quantiles"], feeds)
    want = task.predict(model, test.inputs, test.extra)
    np.testing.assert_allclose(quantiles, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(forecast, want[..., 1], rtol=1e-5, atol=1e-6)


def test_time_features_alone_chain_past_the_horizon(here, capsys):
    covariate_csv(here / "s.csv", n=120)
    assert cli.train_main(["--series", "s.csv", "--column", "y", "--time-features",
                           "--horizon", "2", "--epochs", "1", "--hidden-size", "4",
                           "--window", "5", "--no-progress", "--out", "run"]) == 0
    capsys.readouterr()
    assert cli.predict_main(["run", "--steps", "5"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if not r.startswith("#")]
    assert [r.split("\t")[0] for r in rows] == ["2030-01", "2030-02", "2030-03", "2030-04",
                                                "2030-05"]


def test_chained_windows_carry_the_future_time_features(here):
    """Past the horizon, the second block is forecast from a window ending in the first
    block's forecasts, beside the time features of those forecasts' own months."""
    covariate_csv(here / "s.csv", n=120)                   # ends in 2029-12
    train(TrainConfig(series="s.csv", column="y", time_features=True, horizon=2, epochs=1,
                      hidden_size=4, window=5), here / "run", **QUIET)
    _, task, model = load_run("run")
    values = task.forecast(model, 4)
    window = np.r_[task.series.values[-3:], values[:2]]
    months_ = ["2029-10", "2029-11", "2029-12", "2030-01", "2030-02"]
    angle = 2 * np.pi * np.array([9, 10, 11, 0, 1]) / 12
    extra = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    np.testing.assert_allclose(task.series.step.time_features(months_), extra, atol=1e-12)
    block2 = task.predict(model, window[None], extra[None])[0]
    np.testing.assert_allclose(values[2:], block2, rtol=1e-12)


def test_a_run_saved_before_forecasting_options_existed_still_loads(here, capsys):
    """config.json and the checkpoint's facts without the fields this change added."""
    from lstm_xp.job.checkpoint import load_checkpoint, save_checkpoint
    train(TrainConfig(task="sunspots", epochs=1, hidden_size=4), here / "run", **QUIET)
    new = ("horizon", "covariates", "time_features", "quantiles", "backtest")
    ckpt = load_checkpoint(here / "run" / "checkpoint.npz")
    for key in new:
        ckpt.config.pop(key)
    for key in ("horizon", "covariates", "time_features"):
        ckpt.extra["data"].pop(key)
    save_checkpoint(here / "run" / "checkpoint.npz", ckpt)
    config = json.loads((here / "run" / "config.json").read_text())
    (here / "run" / "config.json").write_text(json.dumps(
        {k: v for k, v in config.items() if k not in new}))
    cfg, task, model = load_run("run")
    assert cfg.horizon == 1 and task.horizon == 1
    assert cli.predict_main(["run", "--steps", "2"]) == 0
    assert resume("run", epochs=2, **QUIET).metrics["horizon"] == 1


def test_multi_output_export_matches_prediction(here):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    train(TrainConfig(task="sunspots", epochs=1, hidden_size=6, horizon=4), here / "run",
          **QUIET)
    assert cli.export_main(["run", "run.onnx"]) == 0
    _, task, model = load_run("run")
    windows = task.split["test"].inputs
    session = ort.InferenceSession("run.onnx", providers=["CPUExecutionProvider"])
    got = session.run(None, {"window": windows})[0]
    assert got.shape == (len(windows), 4)
    np.testing.assert_allclose(got, task.predict(model, windows), rtol=1e-5)


# --------------------------------------------------------------- refused, by name
@pytest.mark.parametrize("argv, line", [
    (["--quantiles", "0.9,0.5,0.1"], "error: --quantiles must be levels in increasing order, "
                                     "each once, got '0.9,0.5,0.1'"),
    (["--quantiles", "0,0.5,0.9"], "error: --quantiles must be levels each in (0, 1), got "
                                   "'0,0.5,0.9'"),
    (["--quantiles", "0.1,0.9"], "error: --quantiles must be levels that include 0.5 (the "
                                 "median gives the point forecast that RMSE, MAE and MASE "
                                 "score), got '0.1,0.9'"),
    (["--quantiles", "0.5,0.9"], "error: --quantiles must be levels on both sides of 0.5 (an "
                                 "interval needs one below the median and one above), got "
                                 "'0.5,0.9'"),
    (["--quantiles", "0.1,a"], "error: --quantiles must be two or more numbers, "
                               "comma-separated (0.1,0.5,0.9), got '0.1,a'"),
    (["--covariates", "x"], "error: --covariates applies only with --series PATH (your own "
                            "series), not to 'seed'"),
    (["--time-features"], "error: --time-features needs times that go round a calendar cycle "
                          "(monthly or quarterly: month of year; daily: day of week; hourly "
                          "or finer: hour of day), but the series 'seed' has no times that "
                          "name a month, day or hour (its labels run x=-70.0 .. x=9.9)"),
    (["--task", "sunspots", "--time-features"],
     "error: --time-features needs times that go round a calendar cycle (monthly or "
     "quarterly: month of year; daily: day of week; hourly or finer: hour of day), but the "
     "series 'sunspots' has no times that name a month, day or hour (its labels run 1700 .. "
     "2008)"),
    (["--task", "co2", "--backtest", "200"],
     "error: --backtest 200 asks for more forecast origins than the test span has: its 79 "
     "values hold 79 origins whose next value lie inside it; pass --backtest 79 or fewer"),
    (["--task", "co2", "--horizon", "12", "--backtest", "7"],
     "error: --backtest 7 asks for more forecast origins than the test span has: its 79 "
     "values hold 68 origins whose 12 steps ahead lie inside it, and 6 of them 12 steps "
     "apart (so that no two forecasts share a target); pass --backtest 6 or fewer"),
    (["--task", "co2", "--horizon", "80"],
     "error: --horizon 80 is too long for the 526-value series 'co2': its train/validation/"
     "test parts (368/79/79 values) must each hold 80 values to forecast (the training part "
     "a window before them, too); --horizon can be at most 79"),
    (["--task", "co2", "--horizon", "79", "--window", "300"],
     "error: --window must be in [1, 289] with --horizon 79 for the 526-value series 'co2': "
     "its training part (the first 368 values) must hold a window and the 79 values after "
     "it; got 300"),
    (["--task", "chars", "--horizon", "3"],
     "error: --horizon applies only to the tasks seed, sunspots, co2, not to 'chars'"),
    (["--horizon", "0"], "error: --horizon must be a positive integer, got 0"),
])
def test_bad_combinations_are_refused_by_name(argv, line, here, capsys):
    assert fails(argv, capsys) == line


def test_bad_covariates_of_a_file_are_refused_by_name(here, capsys):
    covariate_csv(here / "s.csv", n=100)
    base = ["--series", "s.csv", "--column", "y"]
    assert fails([*base, "--covariates", "w"], capsys) == (
        "error: --covariates 'w' is not a column of s.csv; its columns are: month, y, x, z")
    assert fails([*base, "--covariates", "y"], capsys) == (
        "error: --covariates names 'y', the column to learn; covariates are the other "
        "columns whose past helps forecast it")
    assert fails([*base, "--covariates", "x,x"], capsys) == (
        "error: --covariates names 'x' more than once")
    assert fails([*base, "--covariates", "x,,z"], capsys) == (
        "error: --covariates must be column names, comma-separated (a,b), none empty, got "
        "'x,,z'")
    text = (here / "s.csv").read_text().splitlines()
    text[5] = text[5].rsplit(",", 2)[0] + ",oops," + text[5].rsplit(",", 1)[1]
    (here / "s.csv").write_text("\n".join(text) + "\n")
    assert fails([*base, "--covariates", "x"], capsys) == (
        "error: --series s.csv: line 6: 'oops' in column 'x' is not a number")


def test_a_filled_gap_in_a_covariate_is_said(here, capsys):
    covariate_csv(here / "s.csv", n=100)
    text = (here / "s.csv").read_text().splitlines()
    cells = text[9].split(",")
    text[9] = ",".join(cells[:2] + ["NA"] + cells[3:])            # line 10, column x
    (here / "s.csv").write_text("\n".join(text) + "\n")
    assert cli.train_main(["--series", "s.csv", "--column", "y", "--covariates", "x",
                           "--missing", "interpolate", "--epochs", "1", "--hidden-size", "4",
                           "--window", "4", "--no-progress", "--out", "run"]) == 0
    assert ("  covariate 'x': 1 missing value filled by linear interpolation (--missing "
            "interpolate): line 10") in capsys.readouterr().out
    facts = json.loads((here / "run" / "metrics.json").read_text())["data"]
    assert facts["covariates_filled_lines"] == {"x": [10]}


def test_linear_arx_stays_sane_when_its_inputs_outnumber_the_examples(here):
    """A trending y_t = 50 + t / 2 + 2 x_{t-1} and 30 unrelated covariates besides x:
    4 + 4 x 31 = 128 inputs for 59 training examples. Least squares would fit noise;
    linear_arx's ridge penalty, chosen on the validation examples, keeps it near
    persistence where the data say nothing, and it still uses x's past."""
    rng = np.random.default_rng(5)
    n = 90
    x = rng.standard_normal(n)
    y = 50 + 0.5 * np.arange(n) + np.r_[0.0, 2 * x[:-1]]
    cols = {"y": y, "x": x, **{f"n{k}": rng.standard_normal(n) for k in range(30)}}
    lines = ["month," + ",".join(cols)] + [
        f"{t}," + ",".join(f"{c[i]:.5f}" for c in cols.values()) for i, t in enumerate(months(n))]
    (here / "s.csv").write_text("\n".join(lines) + "\n")
    result = train(TrainConfig(series="s.csv", column="y", covariates=",".join(list(cols)[1:]),
                               window=4, epochs=1, hidden_size=4), here / "run", **QUIET)
    base = result.metrics["baselines"]
    assert set(base) == {"persistence", "seasonal_naive", "linear_ar", "linear_arx"}
    assert len(result.task.split["train"]) < 4 + 4 * 31                               # more inputs than examples
    assert base["linear_arx"] < 0.85 * base["persistence"]    # x's past still shows


def test_ridge_arx_is_least_squares_when_the_data_decide(rng):
    from lstm_xp.job import baselines as bl
    x = rng.standard_normal((400, 3))
    y = x @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]]) + 0.01 * rng.standard_normal((400, 2))
    arx = bl.RidgeARX().fit(x[:300], y[:300], x[300:], y[300:])
    assert arx.penalty <= 1e-3
    np.testing.assert_allclose(arx.predict(x[300:]),
                               bl.LinearAR().fit(x[:300], y[:300]).predict(x[300:]), atol=2e-3)
