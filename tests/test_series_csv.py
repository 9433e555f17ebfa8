"""A user's own series (``train --series PATH``): reading and validating the CSV (every bad
case one exact ``error:`` line naming the file, the line and the value), time steps and the
labels that follow, the seasonal period, a self-contained run folder (predict and export
after the file is gone, resume refusing a changed file), and what metrics.json records."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from lstm_xp.job import cli
from lstm_xp.job.csv_series import TimeStep, read_series_csv
from lstm_xp.job.data import DeltaScaler, make_windows, max_window, min_length, time_split
from lstm_xp.job.options import ConfigError
from lstm_xp.job.train import TrainConfig, load_run, resume, train

TINY = ["--epochs", "1", "--hidden-size", "4", "--window", "6", "--no-progress"]


def months(n, start=(2029, 1)):
    return [f"{(start[0] * 12 + start[1] - 1 + k) // 12:04d}-"
            f"{(start[0] * 12 + start[1] - 1 + k) % 12 + 1:02d}" for k in range(n)]


def monthly_csv(path, n=60, *, edit=None, extra_column=True):
    """month,sales[,region]: a seasonal monthly series ending in 2033-12 (for n=60)."""
    times = months(n)
    rows = [[t, f"{100 + 10 * np.sin(2 * np.pi * k / 12) + 0.5 * k:.3f}"]
            + (["north"] if extra_column else []) for k, t in enumerate(times)]
    for line, (col, value) in (edit or {}).items():      # file line numbers (header = 1)
        rows[line - 2][col] = value
    header = "month,sales" + (",region" if extra_column else "")
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def fails(argv, capsys) -> str:
    """The one stderr line of a refused command line (exit status 2)."""
    assert cli.train_main([*argv, "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.rstrip("\n")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------- bad data
@pytest.mark.parametrize("value, line", [
    ("", "error: --series s.csv: line 7: the cell in column 'sales' is empty; fill it, or pass "
         "--missing interpolate to fill gaps between two values linearly"),
    ("NA", "error: --series s.csv: line 7: the cell in column 'sales' is 'NA', a missing "
           "value; fill it, or pass --missing interpolate to fill gaps between two values "
           "linearly"),
    ("12,5", None),
    ("twelve", "error: --series s.csv: line 7: 'twelve' in column 'sales' is not a number"),
    ("inf", "error: --series s.csv: line 7: 'inf' in column 'sales' is not a finite number"),
    ("-1e999", "error: --series s.csv: line 7: '-1e999' in column 'sales' is not a finite "
               "number"),
])
def test_a_bad_cell_is_named_by_its_line_and_value(value, line, here, capsys):
    monthly_csv(here / "s.csv", edit={7: (1, f'"{value}"' if "," in value else value)})
    got = fails(["--series", "s.csv"], capsys)
    if value == "12,5":      # quoted, so one cell: not a number
        line = "error: --series s.csv: line 7: '12,5' in column 'sales' is not a number"
    assert got == line
    assert not (here / "run").exists() and not (here / "runs").exists()


def test_times_that_do_not_increase_or_skip_a_step_name_both_lines(here, capsys):
    monthly_csv(here / "back.csv", edit={6: (0, "2029-03")})
    assert fails(["--series", "back.csv"], capsys) == (
        "error: --series back.csv: line 6: time '2029-03' does not come after '2029-04' on "
        "line 5; times must increase at a regular step")
    monthly_csv(here / "same.csv", edit={6: (0, "2029-04")})
    assert fails(["--series", "same.csv"], capsys) == (
        "error: --series same.csv: line 6: time '2029-04' does not come after '2029-04' on "
        "line 5; times must increase at a regular step")
    rows = monthly_csv(here / "gap.csv").read_text().splitlines()
    del rows[5]                                  # drop 2029-05 (line 6): a month is missing
    (here / "gap.csv").write_text("\n".join(rows) + "\n")
    assert fails(["--series", "gap.csv"], capsys) == (
        "error: --series gap.csv: line 6: time '2029-06' comes 2 months after '2029-04' on "
        "line 5, but the step is 1 month (lines 2 to 3); times must increase at a regular "
        "step")


def test_times_that_are_neither_dates_nor_numbers_or_mixed(here, capsys):
    monthly_csv(here / "s.csv", edit={4: (0, "March")})
    assert fails(["--series", "s.csv", "--time-column", "month"], capsys) == (
        "error: --series s.csv: line 4: time 'March' is neither a date or datetime (2031-07, "
        "2031-07-01, 2031-07-01T12:00) nor a finite number")
    monthly_csv(here / "m.csv", edit={4: (0, "2029-03-01")})
    assert fails(["--series", "m.csv", "--time-column", "month"], capsys) == (
        "error: --series m.csv: line 4: time '2029-03-01' is written differently from "
        "'2029-01' on line 2; write every time one way")
    monthly_csv(here / "e.csv", edit={4: (0, "")})
    assert fails(["--series", "e.csv", "--time-column", "month"], capsys) == (
        "error: --series e.csv: line 4: the time cell is empty")


def test_a_series_too_short_says_the_minimum_length(here, capsys):
    monthly_csv(here / "s.csv", n=20)
    assert fails(["--series", "s.csv", "--window", "24"], capsys) == (
        "error: --series s.csv: its 20 values are too few for --window 24 and the 70/15/15 % "
        "train/validation/test split: that needs at least 36 values; with 20 values, "
        "--window can be at most 13")
    monthly_csv(here / "t.csv", n=3)
    assert fails(["--series", "t.csv", "--window", "1"], capsys) == (
        "error: --series t.csv: its 3 values are too few for --window 1 and the 70/15/15 % "
        "train/validation/test split: that needs at least 6 values; with 3 values no window "
        "fits (the smallest series takes 6 values)")


def test_the_window_limit_is_the_real_one_for_built_in_series(capsys):
    line = ("error: --window must be in [1, 215] for the 309-value series 'sunspots': its "
            "training part (the first 216 values) must hold a window and the value after it; "
            "got {}")
    assert fails(["--task", "sunspots", "--window", "400"], capsys) == line.format(400)
    assert fails(["--task", "sunspots", "--window", "216"], capsys) == line.format(216)
    assert max_window(309) == 215 and min_length(216) == 310 and max_window(310) == 216


def test_unknown_columns_list_the_columns(here, capsys):
    monthly_csv(here / "s.csv")
    assert fails(["--series", "s.csv", "--column", "price"], capsys) == (
        "error: --column 'price' is not a column of s.csv; its columns are: month, sales, "
        "region")
    assert fails(["--series", "s.csv", "--time-column", "when"], capsys) == (
        "error: --time-column 'when' is not a column of s.csv; its columns are: month, "
        "sales, region")
    assert fails(["--series", "s.csv", "--column", "region"], capsys) == (
        "error: --series s.csv: line 2: 'north' in column 'region' is not a number")
    assert fails(["--series", "s.csv", "--column", "sales", "--time-column", "sales"],
                 capsys) == "error: --column and --time-column both name the column 'sales'"


def test_a_column_must_be_chosen_among_several_numeric_ones(here, capsys):
    (here / "two.csv").write_text("a,b\n" + "".join(f"{k},{2 * k}\n" for k in range(40)))
    assert fails(["--series", "two.csv"], capsys) == (
        "error: --series two.csv has 2 numeric columns (a, b); choose the column to learn "
        "with --column (its columns are: a, b)")
    (here / "none.csv").write_text("a,b\n" + "x,y\n" * 40)
    assert fails(["--series", "none.csv"], capsys) == (
        "error: --series none.csv has no numeric column; choose the column to learn with "
        "--column (its columns are: a, b)")


def test_malformed_files(here, capsys):
    (here / "empty.csv").write_text("")
    assert fails(["--series", "empty.csv"], capsys) == (
        "error: --series empty.csv: is empty; it needs a header line naming its columns, "
        "then one line per value")
    (here / "header.csv").write_text("a,b\n\n")
    assert fails(["--series", "header.csv"], capsys) == (
        "error: --series header.csv: has a header (line 1) but no values after it")
    monthly_csv(here / "ragged.csv", edit={9: (1, "5,6")})
    assert fails(["--series", "ragged.csv"], capsys) == (
        "error: --series ragged.csv: line 9: has 4 cells, but the header (line 1) names 3 "
        "columns")
    (here / "bin.csv").write_bytes(b"a,b\n1,2\n\x00\x01")
    assert fails(["--series", "bin.csv"], capsys) == (
        "error: --series bin.csv: line 3: holds a NUL byte: this looks like a binary file, "
        "not CSV text")
    (here / "latin.csv").write_bytes("a\n1\n2\n\xe9t\xe9\n".encode("latin-1"))
    assert fails(["--series", "latin.csv"], capsys) == (
        "error: --series latin.csv: line 4: is not valid UTF-8 (byte b'\\xe9' at byte offset "
        "6); save the file as UTF-8")
    assert fails(["--series", "missing.csv"], capsys) == (
        "error: --series missing.csv: No such file or directory; check the path")
    (here / "folder").mkdir()
    assert fails(["--series", "folder"], capsys) == (
        "error: --series folder: is a directory; pass a CSV file")


def test_options_that_do_not_go_with_series_name_both_flags(here, capsys):
    monthly_csv(here / "s.csv")
    assert fails(["--series", "s.csv", "--task", "sunspots"], capsys) == (
        "error: --task sunspots and --series s.csv do not go together: --series learns the "
        "series in your file; drop one of them")
    assert fails(["--series", "s.csv", "--seq-len", "20"], capsys) == (
        "error: --seq-len applies only to the tasks chars, adding, not to a --series file")
    assert fails(["--series", "s.csv", "--text", "x.txt"], capsys) == (
        "error: --text applies only to the chars task, not to a --series file")
    for flag, value in (("--column", "x"), ("--time-column", "t"), ("--season", "12"),
                        ("--missing", "interpolate")):
        assert fails([flag, value], capsys) == (
            f"error: {flag} applies only with --series PATH (your own series), not to 'seed'")
    assert fails(["--task", "chars", "--column", "x"], capsys) == (
        "error: --column applies only with --series PATH (your own series), not to 'chars'")
    assert fails(["--series", "s.csv", "--season", "1"], capsys) == (
        "error: --season must be an integer >= 2 (0: no seasonal baseline), got 1")


def test_python_callers_get_the_same_errors_spelled_as_fields(tmp_path):
    monthly_csv(tmp_path / "s.csv", edit={5: (1, "NA")})
    with pytest.raises(ConfigError, match=r"^series .*s\.csv: line 5: the cell in column "
                                          r"'sales' is 'NA', a missing value; fill it, or "
                                          r"pass missing interpolate"):
        read_series_csv(tmp_path / "s.csv", column="sales")
    with pytest.raises(ConfigError, match="^task sunspots and series s.csv do not go "):
        TrainConfig(task="sunspots", series="s.csv").resolved()
    with pytest.raises(ConfigError, match=r"^task 'series' learns a file of your own: pass it "
                                          r"with series PATH$"):
        TrainConfig(task="series").resolved()


# ------------------------------------------------------------------ missing values
def test_interpolation_fills_interior_gaps_and_says_how_many(here, capsys):
    monthly_csv(here / "s.csv", edit={5: (1, ""), 9: (1, "NA"), 10: (1, "nan")})
    assert cli.train_main(["--series", "s.csv", "--missing", "interpolate", *TINY,
                           "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert ("  3 missing values filled by linear interpolation (--missing interpolate): "
            "lines 5, 9, 10\n") in out
    data = json.loads((here / "run" / "metrics.json").read_text())["data"]
    assert data["filled"] == 3 and data["filled_lines"] == [5, 9, 10]
    s = read_series_csv(here / "s.csv", "sales", missing="interpolate")
    full = read_series_csv(monthly_csv(here / "full.csv"), "sales")
    k = 3                                         # line 5 is value 3: halfway between 2 and 4
    assert s.values[k] == pytest.approx((full.values[k - 1] + full.values[k + 1]) / 2)
    assert s.values[7] == pytest.approx(full.values[6] + (full.values[9] - full.values[6]) / 3)
    np.testing.assert_array_equal(np.delete(s.values, [3, 7, 8]),
                                  np.delete(full.values, [3, 7, 8]))


@pytest.mark.parametrize("line, at", [(2, "start"), (61, "end")])
def test_gaps_at_either_end_are_always_refused(line, at, here, capsys):
    monthly_csv(here / "s.csv", edit={line: (1, "")})
    assert fails(["--series", "s.csv", "--missing", "interpolate"], capsys) == (
        f"error: --series s.csv: line {line}: the cell in column 'sales' is empty at the {at} "
        f"of the series; --missing interpolate fills only gaps between two values: remove "
        f"the line, or give it a value")


# ------------------------------------------------------------- columns and steps
def test_the_only_numeric_column_is_taken_and_said(here, capsys):
    monthly_csv(here / "s.csv")
    assert cli.train_main(["--series", "s.csv", *TINY, "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert ("  column 'sales': the only numeric column of s.csv (--column chooses another)\n"
            in out)
    assert "  times from column 'month', its only column of dates" in out
    assert "  seasonal_naive: period 12 (monthly steps)\n" in out
    cfg = json.loads((here / "run" / "config.json").read_text())
    assert cfg["task"] == "series" and cfg["series"] == "s.csv" and cfg["column"] is None


@pytest.mark.parametrize("times, described, period, after", [
    (["2033-10", "2033-11", "2033-12"], "monthly", 12, ["2034-01", "2034-02"]),
    (["2033-06", "2033-09", "2033-12"], "quarterly", 4, ["2034-03", "2034-06"]),
    (["2031", "2032", "2033"], "steps of 1", None, ["2034", "2035"]),
    (["2031-01", "2032-01", "2033-01"], "yearly", None, ["2034-01", "2035-01"]),
    (["2031-11-01", "2031-12-01", "2032-01-01"], "monthly", 12, ["2032-02-01", "2032-03-01"]),
    (["2032-02-27", "2032-02-28", "2032-02-29"], "daily", 7, ["2032-03-01", "2032-03-02"]),
    (["2033-12-30", "2033-12-31", "2034-01-01"], "daily", 7, ["2034-01-02", "2034-01-03"]),
    (["2033-12-17", "2033-12-24", "2033-12-31"], "weekly", None, ["2034-01-07", "2034-01-14"]),
    (["2031-12-31T22:00", "2031-12-31T23:00", "2032-01-01T00:00"], "hourly", 24,
     ["2032-01-01T01:00", "2032-01-01T02:00"]),
    (["2031-07-01 12:00:30", "2031-07-01 12:00:45", "2031-07-01 12:01:00"],
     "every 15 seconds", None, ["2031-07-01 12:01:15", "2031-07-01 12:01:30"]),
    (["0.1", "0.2", "0.3"], "steps of 0.1", None, ["0.4", "0.5"]),
    (["-1.5", "-1.0", "-0.5"], "steps of 0.5", None, ["0.0", "0.5"]),
])
def test_the_step_is_inferred_and_labels_what_follows(times, described, period, after,
                                                      tmp_path):
    (tmp_path / "s.csv").write_text("t,y\n" + "".join(f"{t},{k}\n"
                                                      for k, t in enumerate(times)))
    s = read_series_csv(tmp_path / "s.csv", column="y", time_column="t")
    assert isinstance(s.step, TimeStep)
    assert s.step.describe() == described and s.period == period
    assert s.step.after(s.labels[-1], 2) == after
    assert s.time_name == f"t ({described})" and s.labels == times


def test_without_a_time_column_values_are_positions(tmp_path):
    (tmp_path / "s.csv").write_text("y\n" + "".join(f"{k * k}\n" for k in range(5)))
    s = read_series_csv(tmp_path / "s.csv")
    assert s.step is None and s.period is None and s.labels == ["1", "2", "3", "4", "5"]
    assert s.info["picked"] == "the only numeric column" and s.info["time_column"] is None


def test_semicolons_quotes_and_a_byte_order_mark(tmp_path):
    (tmp_path / "s.csv").write_bytes("\ufeffwhen;\"the value\"\n2031-01;1\n2031-02;2\n"
                                     "2031-03;3\n\n\n".encode("utf-8"))
    s = read_series_csv(tmp_path / "s.csv", column="the value")
    assert s.labels == ["2031-01", "2031-02", "2031-03"] and list(s.values) == [1, 2, 3]
    assert s.info["last_line"] == 4


def test_seasonal_period_from_the_step_or_season(here, capsys):
    monthly_csv(here / "s.csv")
    result = train(TrainConfig(series="s.csv", epochs=1, hidden_size=4, window=6),
                   here / "a", progress=False, echo=lambda *_: None)
    assert result.task.period == 12 and "seasonal_naive" in result.metrics["baselines"]
    result = train(TrainConfig(series="s.csv", epochs=1, hidden_size=4, window=6, season=6),
                   here / "b", progress=False, echo=lambda *_: None)
    assert result.task.period == 6
    test = result.task.split["test"]
    assert result.metrics["baselines"]["seasonal_naive"] == pytest.approx(
        np.sqrt(np.mean((result.task.series.values[test.index - 6] - test.targets[:, 0]) ** 2)))
    assert result.metrics["data"]["seasonal_naive"] == "seasonal_naive: period 6 (--season)"
    result = train(TrainConfig(series="s.csv", epochs=1, hidden_size=4, window=6, season=0),
                   here / "c", progress=False, echo=lambda *_: None)
    assert "seasonal_naive" not in result.metrics["baselines"]
    (here / "y.csv").write_text("year,v\n" + "".join(f"{1900 + k},{k % 7}\n"
                                                      for k in range(40)))
    assert cli.train_main(["--series", "y.csv", "--column", "v", "--time-column", "year",
                           *TINY, "--out", "d"]) == 0
    out = capsys.readouterr().out
    assert ("  no seasonal_naive: steps of 1 suggest no seasonal period (--season N sets one)\n"
            in out)
    assert set(json.loads((here / "d" / "metrics.json").read_text())["baselines"]) == {
        "persistence", "linear_ar"}
    assert fails(["--series", "s.csv", "--season", "100", "--window", "6"], capsys) == (
        "error: --season 100 needs 100 values before every test target, but the test part "
        "of s.csv starts after 51 values; choose a shorter season (at most 51)")


def test_hourly_series_too_short_for_its_period_skips_seasonal_naive(tmp_path):
    times = [f"2031-07-01T{h:02d}:00" for h in range(20)]
    (tmp_path / "h.csv").write_text("t,v\n" + "".join(f"{t},{k % 5}\n"
                                                      for k, t in enumerate(times)))
    result = train(TrainConfig(series=str(tmp_path / "h.csv"), epochs=1, hidden_size=4,
                               window=3), tmp_path / "run", progress=False,
                   echo=lambda *_: None)
    assert result.task.period is None and "seasonal_naive" not in result.metrics["baselines"]
    assert result.metrics["data"]["seasonal_naive"] == (
        "no seasonal_naive: its period of 24 (hourly steps) is longer than the 17 values "
        "before the test part (--season N sets a shorter one)")


# ------------------------------------------------------------------- the run folder
def test_metrics_record_the_file(here):
    monthly_csv(here / "s.csv", edit={20: (1, "")})
    train(TrainConfig(series="s.csv", column="sales", missing="interpolate", epochs=1,
                      hidden_size=4, window=6), "run", progress=False, echo=lambda *_: None)
    data = json.loads((here / "run" / "metrics.json").read_text())["data"]
    assert data["file"] == "s.csv" and data["path"] == str((here / "s.csv").resolve())
    assert data["sha256"] == hashlib.sha256((here / "s.csv").read_bytes()).hexdigest()
    assert data["column"] == "sales" and data["column_picked"] is False
    assert data["time_column"] == "month" and data["step"] == "monthly"
    assert data["time_span"] == ["2029-01", "2033-12"] and data["points"] == 60
    assert data["filled"] == 1 and data["filled_lines"] == [20]
    assert (here / "run" / "series.csv").read_bytes() == (here / "s.csv").read_bytes()
    assert json.loads((here / "run" / "series.json").read_text())["sha256"] == data["sha256"]


def test_predict_and_export_after_the_file_is_gone(here, capsys):
    (here / "data").mkdir()
    monthly_csv(here / "data" / "s.csv")
    assert cli.train_main(["--series", "data/s.csv", *TINY, "--out", "run"]) == 0
    files = capsys.readouterr().out.strip().splitlines()[-1]
    assert "series.csv" in files and "forecast.png" in files
    _, _, model = load_run("run")
    before = load_run("run")[1].forecast(model, 14)
    shutil.rmtree(here / "data")
    assert cli.predict_main(["run", "--steps", "14"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# sales: forecasts after the last value (2033-12, ")
    assert lines[1].startswith("# one step at a time: each forecast after the first")
    labels = [line.split("\t")[0] for line in lines[2:]]
    assert labels == [f"2034-{m:02d}" for m in range(1, 13)] + ["2035-01", "2035-02"]
    assert [float(line.split("\t")[1]) for line in lines[2:]] == pytest.approx(before,
                                                                               rel=1e-5)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    assert cli.export_main(["run", "run.onnx"]) == 0
    _, task, model = load_run("run")
    session = ort.InferenceSession(str(here / "run.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["task"] == "series" and meta["series"] == "sales"
    assert meta["last_label"] == "2033-12"
    windows = task.split["test"].inputs
    got = session.run(None, {"window": windows})[0]
    np.testing.assert_allclose(got, task.predict(model, windows)[:, 0], rtol=1e-5)


def test_resume_refuses_a_changed_file_and_uses_its_copy_when_it_is_gone(here, capsys):
    monthly_csv(here / "s.csv")
    assert cli.train_main(["--series", "s.csv", *TINY, "--out", "run"]) == 0
    capsys.readouterr()
    before = (here / "run" / "checkpoint.npz").read_bytes()
    monthly_csv(here / "s.csv", edit={30: (1, "1000")})
    assert cli.train_main(["--resume", "run", "--epochs", "2"]) == 2
    assert capsys.readouterr().err == (
        "error: --series s.csv has changed since the run in run was trained on it (its "
        "sha256 differs); restore the file, or start a new run (the run keeps the file as "
        "it was in run/series.csv)\n")
    assert (here / "run" / "checkpoint.npz").read_bytes() == before
    (here / "s.csv").unlink()
    assert cli.train_main(["--resume", "run", "--epochs", "2", "--no-progress"]) == 0
    assert "resuming after epoch 1 of 2" in capsys.readouterr().out
    shutil.copy(here / "run" / "series.csv", here / "s.csv")      # the same bytes again
    result = resume("run", epochs=3, progress=False, echo=lambda *_: None)
    assert len(result.history) == 3


def test_a_run_without_its_copy_reads_the_file_and_refuses_a_changed_one(here):
    """A run stopped before its end keeps no copy yet: it reads the file at its path."""
    monthly_csv(here / "s.csv")
    train(TrainConfig(series="s.csv", epochs=1, hidden_size=4, window=6), "run",
          progress=False, echo=lambda *_: None)
    for name in ("series.csv", "series.json"):
        (here / "run" / name).unlink()
    load_run("run")
    monthly_csv(here / "s.csv", edit={30: (1, "1000")})
    with pytest.raises(ValueError, match=r"s\.csv has changed since the run in run was "
                                         r"trained on it \(its sha256 differs\)"):
        load_run("run")


# -------------------------------------------------------------- research code
def test_the_helpers_for_your_own_loop(tmp_path):
    s = read_series_csv(monthly_csv(tmp_path / "s.csv"), column="sales")
    bounds = time_split(len(s.values))
    w = make_windows(s.values, 12)
    train_part = w.subset(w.index < bounds["train"][1])
    scaler = DeltaScaler(s.values[:bounds["train"][1]])
    x = scaler.encode_inputs(train_part.inputs)
    assert x.shape == (len(train_part), 12, 1) and np.allclose(x[:, -1], 0)
    np.testing.assert_allclose(scaler.decode(train_part.inputs, scaler.encode_targets(
        train_part.inputs, train_part.targets)), train_part.targets)


def test_figures_have_plain_ticks_and_named_axes(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from lstm_xp.job import plots
    history = [{"epoch": e, "train_loss": 0.9 * 0.97 ** e, "val_rmse": 1 / e} for e in
               range(1, 6)] + [{"epoch": e, "train_loss": 1e-3 / e, "val_rmse": 0.1} for e in
                               range(6, 40)]
    made = []
    real_savefig = plt.Figure.savefig

    def keep(fig, *args, **kw):           # look at each figure as it is saved
        fig.canvas.draw()
        made.append(fig)
        return real_savefig(fig, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Figure, "savefig", keep)
        plots.loss_curve(history, "rmse", "MSE", 10, "t", tmp_path / "loss.png")
        plots.forecast_vs_actual(["2031-01", "2031-02", "2031-03"], [1, 2, 3],
                                 {"lstm": [1, 2, 2.5]}, {"lstm": 0.3}, "t", "sales",
                                 tmp_path / "f.png", time_label="month (monthly)")
    loss, forecast = made
    top, bottom = loss.axes
    assert top.get_yscale() == "log" and top.get_shared_x_axes().joined(top, bottom)
    for ax in loss.axes + forecast.axes:
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and not any("times" in t or "^" in t or "×" in t for t in labels), labels
    ax = forecast.axes[0]
    assert ax.get_xlabel() == "month (monthly)" and ax.get_ylabel() == "sales"
    assert ax.get_legend() is None and len(forecast.legends) == 1     # below, not on the data
    legend_box = forecast.legends[0].get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0
