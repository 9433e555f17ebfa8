"""A user's own series (``lstm-xp train --series PATH``): a series task whose data come
from a CSV file, with the built-in series' windows, splits, baselines and figures.

What is particular to a file: it is read and validated once (``csv_series``), its facts
(name, path, sha256, column, time span, filled values) go into metrics.json, the seasonal
period comes from the time step or ``--season``, and the run keeps its own copy of the file
(``series.csv``, with ``series.json`` saying where it came from) so that ``predict`` and
``export`` work after the file has moved or gone, and ``--resume`` can tell when the file
at its recorded path has changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..csv_series import MISSING_MODES, parse_series_csv, read_bytes, sha256_of
from ..data import max_window, min_length
from ..options import ConfigError, positive_int_option, require
from .series import ForecastTask, column_names

COPY, FACTS = "series.csv", "series.json"     # the run's copy of the file, and its origin


class CsvSeriesTask(ForecastTask):
    """One-step-ahead forecasting of a column of a CSV file (``TrainConfig.series``)."""

    options = ForecastTask.options + ("series", "column", "time_column", "season", "missing",
                                      "covariates")
    # the built-in sunspots' choices (a real series of a few hundred values)
    DEFAULTS = {"series": dict(epochs=60, batch_size=16, hidden_size=32, lr=5e-3, window=24,
                               missing="refuse")}

    @classmethod
    def validate(cls, cfg) -> None:
        super().validate(cfg)
        require(isinstance(cfg.series, (str, os.PathLike)) and str(cfg.series) != "",
                "series", "the path of a CSV file", cfg.series)
        cfg.series = str(cfg.series)
        for name in ("column", "time_column"):
            require(getattr(cfg, name) is None or isinstance(getattr(cfg, name), str), name,
                    "a column name from the file's header", getattr(cfg, name))
        if cfg.column is not None and cfg.column == cfg.time_column:
            raise ConfigError("column", "{name} and {opt[time_column]} both name the column "
                              "{got!r}", got=cfg.column)
        if cfg.season is not None and cfg.season != 0:
            cfg.season = positive_int_option("season", cfg.season)
            require(cfg.season >= 2, "season", "an integer >= 2 (0: no seasonal baseline)",
                    cfg.season)
        require(cfg.missing in MISSING_MODES, "missing", f"one of {MISSING_MODES}",
                cfg.missing)
        if cfg.covariates is not None:
            cfg.covariates = column_names(cfg.covariates, "covariates")

    @classmethod
    def from_config(cls, cfg):
        data = read_bytes(cfg.series)
        return cls(parse_series_csv(data, cfg.series, cfg.column, cfg.time_column,
                                    cfg.missing, cfg.covariates or ()), cfg.window,
                   cfg.season, data, cfg.series, **cls.forecast_options(cfg))

    @classmethod
    def from_run(cls, cfg, run_dir, resuming: bool):
        """The task of a saved run, from the run's own copy of its file when it has one
        (a run keeps one when it finishes). Resuming refuses a file that is still at its
        recorded path but differs from the copy."""
        run_dir = Path(run_dir)
        if not (run_dir / COPY).is_file():     # it stopped before keeping a copy
            return cls.from_config(cfg)
        facts = json.loads((run_dir / FACTS).read_text(encoding="utf-8"))
        original = Path(facts["path"])
        shown = cfg.series if Path(cfg.series).resolve() == original else str(original)
        if resuming and original.is_file() and sha256_of(original) != facts["sha256"]:
            raise ConfigError("series", "{name} {path} has changed since the run in {run} was "
                              "trained on it (its sha256 differs); restore the file, or start "
                              "a new run (the run keeps the file as it was in {copy})",
                              path=shown, run=str(run_dir), copy=str(run_dir / COPY))
        data = (run_dir / COPY).read_bytes()
        series = parse_series_csv(data, run_dir / COPY, cfg.column, cfg.time_column,
                                  cfg.missing, cfg.covariates or ())
        series.info.update(file=facts["file"], path=facts["path"])
        return cls(series, cfg.window, cfg.season, data, shown, **cls.forecast_options(cfg))

    def __init__(self, series, window: int, season: int | None = None, data: bytes = b"",
                 shown: str | None = None, fractions=(0.7, 0.15, 0.15), **forecasting):
        self.shown = shown or series.info.get("path", series.name)
        self.data = data
        super().__init__(series, window, fractions, **forecasting)
        self.task_name = "series"
        first_test = int(self.split["test"].index[0])     # values before the test part
        step = series.step
        steps = None if step is None else (step.describe() if step.kind == "number"
                                           else f"{step.describe()} steps")
        if season is not None:
            self._period = season or None
            self.season_note = (f"seasonal_naive: period {season} (--season)" if season else
                                "no seasonal_naive (--season 0)")
            if season and season > first_test:
                raise ConfigError("season", "{name} {got} needs {got} values before every "
                                  "test target, but the test part of {path} starts after "
                                  "{n} values; choose a shorter season (at most {n})",
                                  got=season, path=self.shown, n=first_test)
        elif step is None:
            self._period = None
            self.season_note = ("no seasonal_naive: without a time column no seasonal "
                                "period is known (--season N sets one)")
        elif step.period is None:
            self._period = None
            self.season_note = (f"no seasonal_naive: {steps} suggest no seasonal period "
                                f"(--season N sets one)")
        elif step.period > first_test:
            self._period = None
            self.season_note = (f"no seasonal_naive: its period of {step.period} ({steps}) "
                                f"is longer than the {first_test} values before the test "
                                f"part (--season N sets a shorter one)")
        else:
            self._period = step.period
            self.season_note = f"seasonal_naive: period {step.period} ({steps})"

    @property
    def period(self) -> int | None:
        return self._period

    def _too_long(self, window: int, fractions) -> ConfigError:
        n, h = len(self.series.values), self.horizon
        top = max_window(n, fractions, h)
        ahead = "" if h == 1 else f", {{opt[horizon]}} {h}"
        return ConfigError(
            "window", "{opt[series]} {path}: its {n} values are too few for {name} {got}"
            + ahead + " and the {split} train/validation/test split: that needs at least "
            "{need} values; "
            + ("with {n} values, {name} can be at most {top}" if top else
               "with {n} values no window fits (the smallest series takes {least} values)"),
            path=self.shown, n=n, got=window, need=min_length(window, fractions, h), top=top,
            least=min_length(1, fractions, h),
            split="/".join(f"{round(100 * f)}" for f in fractions) + " %")

    def value_label(self) -> str:
        return self.series.name

    def summary_line(self) -> str:
        info, s = self.series.info, self.series
        when = (f"{s.step.describe()} from {s.labels[0]} to {s.labels[-1]}" if s.step else
                "no time column")
        lines = [f"{info['file']}, column {info['column']!r} (lines {info['first_line']}-"
                 f"{info['last_line']}, {when}): " + super().summary_line()]
        if info["picked"] != "named":
            lines.append(f"  column {info['column']!r}: {info['picked']} of {info['file']} "
                         f"(--column chooses another)")
        if info["time_column_picked"]:
            lines.append(f"  times from column {info['time_column']!r}, its only column of "
                         f"dates (--time-column chooses another)")
        if info["filled"]:
            shown = ", ".join(map(str, info["filled_lines"][:10]))
            more = ", ..." if info["filled"] > 10 else ""
            lines.append(f"  {info['filled']} missing value{'s' if info['filled'] > 1 else ''}"
                         f" filled by linear interpolation (--missing interpolate): "
                         f"line{'s' if info['filled'] > 1 else ''} {shown}{more}")
        for name, filled in info.get("covariates_filled_lines", {}).items():
            shown = ", ".join(map(str, filled[:10])) + (", ..." if len(filled) > 10 else "")
            lines.append(f"  covariate {name!r}: {len(filled)} missing value"
                         f"{'s' if len(filled) > 1 else ''} filled by linear interpolation "
                         f"(--missing interpolate): line{'s' if len(filled) > 1 else ''} "
                         f"{shown}")
        lines.append(f"  {self.season_note}")
        return "\n".join(lines)

    def describe(self) -> dict:
        info = self.series.info
        return {**super().describe(), "file": info["file"], "path": info["path"],
                "sha256": info["sha256"], "column": info["column"],
                "column_picked": info["picked"] != "named",
                "time_column": info["time_column"], "step": info["step"],
                "time_span": [self.series.labels[0], self.series.labels[-1]],
                "filled": info["filled"], "filled_lines": info["filled_lines"],
                **({"covariates_filled_lines": info["covariates_filled_lines"]}
                   if info.get("covariates_filled_lines") else {}),
                "seasonal_naive": self.season_note}

    def write_outputs(self, model, run_dir, scores: dict, figures: bool) -> list:
        """The run's own copy of the file (series.csv, series.json, written by keep_data when
        the run began), then the figures."""
        return self.kept_files() + super().write_outputs(model, run_dir, scores,
                                                               figures)

    def kept_files(self) -> list:
        return [COPY, FACTS]

    def keep_data(self, run_dir) -> list:
        """Write the file as trained on (``series.csv``, the same bytes) and where it came
        from (``series.json``) into ``run_dir``; returns their names."""
        run_dir = Path(run_dir)
        info = self.series.info
        facts = {"file": info["file"], "path": info["path"], "sha256": info["sha256"],
                 "column": info["column"], "time_column": info["time_column"]}
        for name, payload in ((COPY, self.data),
                              (FACTS, (json.dumps(facts, indent=2) + "\n").encode())):
            tmp = run_dir / f".{name}.tmp-{os.getpid()}"
            try:
                tmp.write_bytes(payload)
                os.replace(tmp, run_dir / name)
            finally:
                if tmp.exists():
                    tmp.unlink()
        return [COPY, FACTS]
