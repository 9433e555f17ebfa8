"""The training job's configuration: every option of a run, validated once.

:class:`TrainConfig` is what ``lstm-xp train`` offers (``lstm_xp.job.cli`` builds the flags
from its fields) and what a run folder's ``config.json`` holds; ``resolved()`` fills in the
task's defaults and checks every field, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from backends import DEVICES, FLOAT_DTYPES

from .options import ConfigError, is_real, not_for_task, positive_int_option, require
from .csv_series import MISSING_MODES
from .tasks import FILE_TASKS, KINDS, task_class, task_names, tasks_taking

OPTIMIZERS = ("adam", "sgd")
CELL_OPTIONS = ("peephole", "layer_norm", "zoneout", "recurrent_dropout", "weight_drop")
SGD_OPTIONS = {"momentum": 0.9, "lr_decay": 0.0}     # options of sgd only, their defaults
ON_NONFINITE = ("stop", "skip")


def _option(default, help: str, type=None, choices=None):
    """A TrainConfig field with what a command line needs to offer it (lstm_xp.cli)."""
    return field(default=default, metadata={"help": help, "type": type, "choices": choices})


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` fields take the task's default
    (``Task.defaults``); options of one kind of task are None for the others."""

    task: str | None = _option(None, "seed (the default): the series lstm-xp grew from; "
                               "sunspots, co2: real series; chars: a character-level language "
                               "model; adding: the adding problem, memory across --seq-len "
                               "steps (not with --series)", str, task_names())
    series: str | None = _option(None, "learn your own series: a CSV file with a header line "
                                 "(README, 'Your own series'); its run's task is 'series', "
                                 "whose defaults the other options list", str)
    column: str | None = _option(None, "--series: the column to learn (default: the file's "
                                 "only numeric column)", str)
    time_column: str | None = _option(None, "--series: the column of times, ISO dates "
                                      "(2031-07, 2031-07-01, 2031-07-01T12:00) or numbers at a "
                                      "regular step (default: the file's only column of "
                                      "dates, if any)", str)
    season: int | None = _option(None, "--series: the seasonal period in steps of the "
                                 "seasonal_naive baseline; 0: none (default: from the time "
                                 "step: 12 monthly, 4 quarterly, 7 daily, 24 hourly)", int)
    missing: str | None = _option(None, "--series: what an empty or NA cell does: refuse "
                                  "(the default) names its line; interpolate fills gaps "
                                  "between two values linearly", str, MISSING_MODES)
    device: str = _option("cpu", "where to compute ('auto': the GPU if usable, else the CPU)",
                          str, DEVICES)
    dtype: str = _option("float32", "floating-point precision", str, FLOAT_DTYPES)
    tf32: bool = _option(False, "--device gpu, float32: let the GEMMs use TF32 tensor cores "
                         "(inputs rounded to a 10-bit mantissa: faster, less exact)", bool)
    epochs: int | None = _option(None, "total epochs", int)
    batch_size: int | None = _option(None, "examples (chars with --bptt: streams) per step",
                                     int)
    hidden_size: int | None = _option(None, "LSTM units per layer", int)
    num_layers: int = _option(1, "stacked LSTM layers", int)
    dropout: float = _option(0.0, "dropout on each LSTM layer's output but the last "
                             "(training only; needs num-layers >= 2)", float)
    peephole: bool = _option(False, "peephole connections from the cell to the gates", bool)
    layer_norm: bool = _option(False, "layer-normalised LSTM cell", bool)
    zoneout: float = _option(0.0, "zoneout rate of cell and hidden state (training)", float)
    recurrent_dropout: float = _option(0.0, "variational dropout on h_{t-1} (one mask per "
                                       "sequence)", float)
    weight_drop: float = _option(0.0, "DropConnect on the recurrent weights (one mask per "
                                 "batch)", float)
    lr: float | None = _option(None, "learning rate", float)
    optimizer: str = _option("adam", "optimizer", str, OPTIMIZERS)
    momentum: float | None = _option(None, "momentum", float)
    lr_decay: float | None = _option(None, "lr / (1 + lr_decay * step)", float)
    clip: float | None = _option(1.0, "global gradient-norm limit (0: no clipping)", float)
    window: int | None = _option(None, "past values per forecast", int)
    horizon: int | None = _option(None, "values forecast at once, 1..H steps ahead (a "
                                  "direct multi-output head), each step scored against the "
                                  "baselines", int)
    covariates: str | list | None = _option(
        None, "other columns of the --series file whose past values are extra inputs "
        "(comma-separated: a,b)", str)
    time_features: bool | None = _option(None, "series runs: sin/cos of the month of year "
                                         "(monthly, quarterly), day of week (daily) or hour "
                                         "of day (hourly or finer) as extra inputs", bool)
    quantiles: str | list | None = _option(
        None, "forecast these quantiles (comma-separated, increasing, with 0.5: "
        "0.1,0.5,0.9), trained with the pinball loss; intervals scored by coverage", str)
    backtest: int | None = _option(None, "also score the model from K forecast "
                                   "origins spread over the test span (each H steps ahead); "
                                   "the verdict then uses their mean and spread", int)
    seq_len: int | None = _option(None, "chars: characters per training sequence; adding: "
                                  "steps per sequence (T)", int)
    batches_per_epoch: int | None = _option(None, "chars: random windows per epoch; adding: "
                                            "batches of fresh sequences per epoch", int)
    bptt: int | None = _option(None, "read the text as batch-size parallel streams in "
                               "chunks of BPTT characters, carrying the state "
                               "(truncated BPTT)", int)
    text: str | None = _option(None, "a text file to learn instead of the Python stdlib "
                               "sources", str)
    encoding: str | None = _option(None, "the encoding of the text file", str)
    max_chars: int | None = _option(None, "at most this many characters of the text", int)
    seed: int = _option(0, "seeds initialisation, batch order and dropout masks", int)
    on_nonfinite: str = _option("stop", "what a step with a NaN/Inf loss or gradient does: "
                                "stop the run, or skip the step", str, ON_NONFINITE)

    def resolved(self) -> TrainConfig:
        """A copy with task defaults filled in, after checking every field.

        Raises:
            ConfigError (a ValueError) naming the first bad field.
        """
        task = _task_of(self)
        kind = task_class(task)
        kind.check_given(self)                 # options that a given one makes meaningless
        require(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}",
                self.optimizer)
        for name in SGD_OPTIONS:
            if self.optimizer != "sgd" and getattr(self, name) is not None:
                raise ConfigError(name, "{name} applies only to {opt[optimizer]} sgd, not to "
                                  "{got!r}", got=self.optimizer)
        defaults = {**kind.defaults(task),
                    **(SGD_OPTIONS if self.optimizer == "sgd" else {})}
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        cfg = replace(self, task=task, **filled)
        for name in ("epochs", "batch_size", "hidden_size", "num_layers"):
            setattr(cfg, name, positive_int_option(name, getattr(cfg, name)))
        require(is_real(cfg.lr) and cfg.lr > 0, "lr", "a number > 0", cfg.lr)
        require(is_real(cfg.dropout) and 0 <= cfg.dropout < 1, "dropout", "a number in [0, 1)",
                cfg.dropout)
        if cfg.dropout and cfg.num_layers < 2:
            raise ConfigError("dropout", "{name} acts between stacked LSTM layers, so it needs "
                              "{opt[num_layers]} 2 or more (got {n})", n=cfg.num_layers)
        for name in ("peephole", "layer_norm", "tf32"):
            require(isinstance(getattr(cfg, name), bool), name, "true or false",
                    getattr(cfg, name))
        require(is_real(cfg.zoneout) and 0 <= cfg.zoneout <= 1, "zoneout", "a number in [0, 1]",
                cfg.zoneout)
        for name in ("recurrent_dropout", "weight_drop"):
            require(is_real(getattr(cfg, name)) and 0 <= getattr(cfg, name) < 1, name,
                    "a number in [0, 1)", getattr(cfg, name))
        if cfg.optimizer == "sgd":
            require(is_real(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum",
                    "a number in [0, 1)", cfg.momentum)
            require(is_real(cfg.lr_decay) and cfg.lr_decay >= 0, "lr_decay", "a number >= 0",
                    cfg.lr_decay)
        require(cfg.clip is None or (is_real(cfg.clip) and cfg.clip >= 0), "clip",
                "a number >= 0 (0: no clipping)", cfg.clip)
        require(isinstance(cfg.seed, (int, np.integer)) and not isinstance(cfg.seed, bool)
                and cfg.seed >= 0, "seed", "an integer >= 0", cfg.seed)
        for name, choices in (("device", DEVICES), ("dtype", FLOAT_DTYPES),
                              ("on_nonfinite", ON_NONFINITE)):
            require(getattr(cfg, name) in choices, name, f"one of {choices}", getattr(cfg, name))
        if cfg.tf32 and (cfg.device == "cpu" or cfg.dtype != "float32"):
            raise ConfigError("tf32", "{name} is a cuBLAS math mode for float32 on the GPU: it "
                              "needs {opt[device]} gpu (or auto) and {opt[dtype]} float32, not "
                              "{device} and {dtype}", device=cfg.device, dtype=cfg.dtype)
        for option in TASK_OPTIONS:
            if option not in kind.options and getattr(cfg, option) is not None:
                raise _not_for_task(option, cfg)
        kind.validate(cfg)
        return cfg

    def cell_options(self) -> dict:
        """The LSTM cell-variant options of this run (``LSTM``'s keyword arguments)."""
        return {name: getattr(self, name) for name in CELL_OPTIONS}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}")
        d = dict(d)
        if d.get("optimizer", "adam") != "sgd":     # written when adam runs stored sgd's
            for name, old_default in SGD_OPTIONS.items():   # defaults: they never applied
                if d.get(name) == old_default:
                    d[name] = None
        if d.get("task") in KINDS:
            KINDS[d["task"]].normalize_saved(d)
        return cls(**d)


# the fields that only some kinds of task take (every other field applies to every task)
TASK_OPTIONS = tuple(sorted({name for kind in KINDS.values() for name in kind.options}))


def _task_of(cfg: TrainConfig) -> str:
    """The task a config runs: ``task`` (default "seed"), or "series" when it gives a
    ``series`` file, which no ``task`` but "series" (a saved run's) goes with."""
    if cfg.series is None:
        if cfg.task in FILE_TASKS:
            raise ConfigError("series", "{opt[task]} {task!r} learns a file of your own: "
                              "pass it with {name} PATH", task=cfg.task)
        return "seed" if cfg.task is None else cfg.task
    if cfg.task is not None and cfg.task not in FILE_TASKS:
        raise ConfigError("task", "{name} {task} and {opt[series]} {path} do not go together: "
                          "{opt[series]} learns the series in your file; drop one of them",
                          task=cfg.task, path=cfg.series)
    return "series"


def _not_for_task(option: str, cfg: TrainConfig) -> ConfigError:
    if cfg.series is not None:          # the run's data come from a file
        return ConfigError(option, "{name} applies only to {which}, not to a "
                           "{opt[series]} file", which=_takers(option))
    if not tasks_taking(option):        # an option of the files' tasks only
        return ConfigError(option, "{name} applies only with {opt[series]} PATH (your own "
                           "series), not to {task!r}", task=cfg.task)
    return not_for_task(option, cfg.task, tasks_taking(option))


def _takers(option: str) -> str:
    takers = tasks_taking(option)
    return f"the {takers[0]} task" if len(takers) == 1 else "the tasks " + ", ".join(takers)


