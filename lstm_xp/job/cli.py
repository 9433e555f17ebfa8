"""The ``lstm-xp`` command (also ``python -m lstm_xp``): ``train``, ``predict``, ``export``.
``scripts/train.py``, ``predict.py`` and ``export.py`` are thin wrappers over the same code.

The training options are generated from :class:`lstm_xp.train.TrainConfig`'s fields (flag
names, types, choices, help, defaults per task), and the prediction options from each
task's ``predict_options``, so the command line and the library cannot drift apart. Every
error is one ``error:`` line on stderr naming the option as it was typed, exit status 2
(3 for a diverged run); never a traceback for bad input or a failing disk. Ctrl-C and
SIGTERM stop a run with one line naming the command that continues it (130, 143).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from dataclasses import MISSING, fields

from backends import DEVICES, BackendUnavailableError, install_command

from .checkpoint import CheckpointError
from .options import ConfigError, flag, not_for_task, positive_int_option
from .tasks import KINDS
from .config import SGD_OPTIONS, TrainConfig
from .train import RunInterrupted, TrainingDiverged, load_run, resume, train

EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3

_OS_ADVICE = {
    errno.EACCES: "check its permissions, or choose another folder with --out",
    errno.EPERM: "check its permissions, or choose another folder with --out",
    errno.EROFS: "it is on a read-only file system; choose another folder with --out",
    errno.ENOSPC: "the disk is full; free some space and resume the run (its last "
                  "checkpoint is as it was)",
    errno.EDQUOT: "the disk quota is used up; free some space and resume the run (its last "
                  "checkpoint is as it was)",
    errno.ENOTDIR: "part of that path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; pass a file",
    errno.EEXIST: "it already exists as a file; choose another path",
    errno.ENOENT: "check the path",
}


def describe_os_error(err: OSError) -> str:
    """One sentence for an OS error: the path, what went wrong and what to do."""
    if err.errno is None or not err.filename:
        return str(err)
    advice = _OS_ADVICE.get(err.errno, "check the path")
    return f"{err.filename}: {err.strerror}; {advice}"


def _fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _quiet_on_broken_pipe(main):
    """`... | head` closes our stdout early: stop quietly instead of printing a traceback."""
    def wrapped(argv=None) -> int:
        try:
            status = main(argv)
            sys.stdout.flush()
            return status
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())     # Python flushes stdout again at exit
            return 0
    wrapped.__doc__ = main.__doc__
    return wrapped


# ------------------------------------------------------------------------- training
def _defaults_note(name: str, default) -> str:
    if name in SGD_OPTIONS:
        return f" (--optimizer sgd only; default {SGD_OPTIONS[name]})"
    per_task = {task: kind.defaults(task)[name] for task, kind in KINDS.items()
                if name in kind.defaults(task)}
    takers = [task for task, kind in KINDS.items() if name in kind.options]
    if takers and len(takers) < len(KINDS):
        where = f"{'/'.join(takers)} only"
        if per_task:
            values = set(per_task.values())
            where += (f"; default {values.pop()}" if len(values) == 1 else
                      "; default " + ", ".join(f"{t} {v}" for t, v in per_task.items()))
        return f" ({where})"
    if per_task:
        return " (default per task: " + ", ".join(f"{t} {v}" for t, v in per_task.items()) + ")"
    return "" if default is None else f" (default: {default})"


METAVARS = {"series": "PATH", "horizon": "H", "covariates": "A,B", "quantiles": "Q1,Q2,...",
            "backtest": "K"}


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lstm-xp train", argument_default=argparse.SUPPRESS, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train an lstm-xp model on a built-in dataset (--task) or on your own "
                    "series (--series PATH, a CSV file) and compare it with simple baselines "
                    "on the same test points.",
        epilog="examples:\n"
               "  lstm-xp train                      # the seed series, CPU\n"
               "  lstm-xp train --task sunspots --device auto\n"
               "  lstm-xp train --task chars --text my.txt --bptt 64\n"
               "  lstm-xp train --series sales.csv --column sales   # your own series\n"
               "  lstm-xp train --resume runs/seed-20261201-101500 --epochs 80\n"
               "A run folder receives config.json, checkpoint.npz (after every epoch), "
               "metrics.json,\nloss_curve.png and forecast.png (series) or samples.txt "
               "(chars).")
    for f in fields(TrainConfig):
        meta = f.metadata
        default = None if f.default is MISSING else f.default
        kwargs = {"type": meta["type"], "dest": f.name,
                  "help": meta["help"] + _defaults_note(f.name, default)}
        if meta["type"] is bool:                    # a switch: --peephole
            p.add_argument(flag(f.name), action="store_true", dest=f.name,
                           help=meta["help"])
            continue
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        else:
            kwargs["metavar"] = METAVARS.get(f.name, f.name.upper())
        p.add_argument(flag(f.name), **kwargs)
    p.add_argument("--out", metavar="RUN_DIR",
                   help="run folder (default: a new runs/<task>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue the run in RUN (its folder or its checkpoint.npz) up to "
                        "--epochs in total; its saved config applies")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI, started as `mpiexec -n N lstm-xp "
                        "train --distributed ...`: --batch-size is the global batch, split "
                        "across the ranks; rank 0 alone prints and writes the run folder "
                        f"(needs {install_command('mpi')})")
    return p


@_quiet_on_broken_pipe
def train_main(argv=None) -> int:
    """``lstm-xp train``: train a new run, or extend one with --resume.

    Exit status: 0 done; 2 a bad option or file, a failing disk; 3 the run diverged; 130 /
    143 stopped by SIGINT / SIGTERM (one line says the saved epoch and how to continue)."""
    given = vars(train_parser().parse_args(argv))
    out, run = given.pop("out", None), given.pop("resume", None)
    progress = False if given.pop("no_progress", False) else None   # None: on terminals
    dist = None
    try:
        if given.pop("distributed", False):
            from ..distributed import setup
            dist = setup()
        if run:
            refused = [flag(k) for k in given if k not in ("epochs", "device")]
            refused += ["--out"] if out else []
            if refused:                       # the same on every rank: rank 0 says it
                names = ", ".join(refused[:-1]) + (" and " if len(refused) > 1 else "")
                message = (f"{names}{refused[-1]} cannot change when resuming a run (the "
                           f"run's saved options apply); only --epochs and --device may be "
                           f"given with --resume")
                return _fail(message) if dist is None or dist.is_root else EXIT_BAD_INPUT
            result = resume(run, epochs=given.get("epochs"), device=given.get("device"),
                            progress=progress, dist=dist)
        else:
            result = train(TrainConfig(**given), out, progress=progress, dist=dist)
    except RunInterrupted as stop:            # SIGINT / SIGTERM: one line, 130 / 143
        if dist is None or dist.is_root:
            command = "lstm-xp train" if dist is None else (
                f"mpiexec -n {dist.size} lstm-xp train --distributed")
            print(stop.describe(resume_with=command), file=sys.stderr)
        return stop.exit_status
    except ConfigError as err:
        return _fail_on(dist, err, err.render(flag))
    except TrainingDiverged as err:
        return _fail_on(dist, err, str(err), EXIT_DIVERGED)
    except (BackendUnavailableError, CheckpointError, ValueError, RuntimeError) as err:
        return _fail_on(dist, err, str(err))
    except OSError as err:
        return _fail_on(dist, err, describe_os_error(err))
    except Exception as err:
        if dist is None:
            raise
        return _fail_on(dist, err, f"{type(err).__name__}: {err}")
    if dist is None or dist.is_root:
        print(f"results in {result.run_dir}/ ({', '.join(result.files)})")
    return 0


# errors every rank meets alike before training (the same options, the same shared files)
_SAME_ON_EVERY_RANK = (ConfigError, CheckpointError, FileNotFoundError)


def _fail_on(dist, err, message: str, status: int = EXIT_BAD_INPUT) -> int:
    """One error line and the exit status; under MPI, said by rank 0 when every rank stops
    the same way, else by the failing rank, which then aborts the job (no rank waits)."""
    if dist is None:
        return _fail(message, status)
    alike = getattr(err, "collective", False) or (isinstance(err, _SAME_ON_EVERY_RANK)
                                                  and not dist.training)
    if alike:
        return _fail(message, status) if dist.is_root else status
    _fail(f"rank {dist.rank} of {dist.size}: {message}", status)
    sys.stderr.flush()
    dist.abort(status)
    return status


# ------------------------------------------------------------------------ prediction
def _predict_takers(option: str) -> list:
    return [task for task, kind in KINDS.items() if option in kind.predict_options]


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lstm-xp predict", argument_default=argparse.SUPPRESS, allow_abbrev=False,
        description="Forecast (series runs), sample text (chars runs) or show test sequences "
                    "with their predicted sums (adding runs) with a trained run. "
                    "Series forecasts continue past the series' last value: the run's "
                    "--horizon H values at once from the last window, then, for more steps, "
                    "blocks of H chained, each from a window that holds earlier forecasts, "
                    "so errors compound; a run with --quantiles prints them beside the "
                    "direct steps.")
    p.add_argument("run", help="a run folder, or its checkpoint.npz")
    p.add_argument("--which", choices=("best", "last"),
                   help="parameters of the best validation epoch (default), or of the last")
    p.add_argument("--device", choices=DEVICES, help="default: the device the run used")
    seen = set()
    for kind in KINDS.values():
        for name, (type_, default, help_) in kind.predict_options.items():
            if name not in seen:
                seen.add(name)
                p.add_argument(flag(name), type=type_, dest=name,
                               help=f"{'/'.join(_predict_takers(name))} runs: {help_} "
                                    f"(default: {default!r})")
    return p


@_quiet_on_broken_pipe
def predict_main(argv=None) -> int:
    """``lstm-xp predict``: forecast or sample with a saved run."""
    given = vars(predict_parser().parse_args(argv))
    run, which, device = given.pop("run"), given.pop("which", "best"), given.pop("device", None)
    try:
        cfg, task, model = load_run(run, device=device, which=which)
        for name in given:
            if name not in type(task).predict_options:
                raise not_for_task(name, cfg.task, _predict_takers(name))
        text = task.predict_text(model, **given)
    except ConfigError as err:
        return _fail(err.render(flag))
    except BackendUnavailableError as err:
        hint = "" if device == "cpu" else " (pass --device cpu to run it on the CPU)"
        return _fail(f"{err}{hint}")
    except (CheckpointError, ValueError) as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(describe_os_error(err))
    print(text)
    return 0


# --------------------------------------------------------------------------- export
def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lstm-xp export", allow_abbrev=False,
        description="Write a trained run's model (its best parameters) as an ONNX graph from "
                    "raw inputs to raw outputs: series runs take 'window' (B, W) float64 raw "
                    "values (and, when the run has them, 'covariates' (B, W, C) raw and "
                    "'time_features' (B, W, 2): sin, cos) and give 'forecast', (B,) or (B, H) "
                    "with --horizon H, what lstm-xp predict prints for that window (with "
                    "--quantiles, the median, and 'quantiles' (B, H, Q) too); adding runs "
                    "take 'x' (B, T, 2) float64 and give 'sum' (B,); chars runs take 'ids' "
                    "(B, T) int64 and give 'logits' (B, T, V). The run's task, window and "
                    "vocabulary are in the model's metadata_props. Needs the onnx package.")
    p.add_argument("run", help="a run folder, or its checkpoint.npz")
    p.add_argument("out", help="the .onnx file to write")
    return p


@_quiet_on_broken_pipe
def export_main(argv=None) -> int:
    """``lstm-xp export``: a trained run as an ONNX model."""
    args = export_parser().parse_args(argv)
    try:
        from .export import export_run
        model = export_run(args.run, args.out)
    except (ImportError, CheckpointError, ValueError) as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(describe_os_error(err))
    names = ", ".join(f"{v.name} {_dims(v)}" for v in model.graph.input)
    outs = ", ".join(f"{v.name} {_dims(v)}" for v in model.graph.output)
    print(f"wrote {args.out}: inputs {names}; outputs {outs}")
    return 0


# -------------------------------------------------------------------------- inspect
def inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lstm-xp inspect", allow_abbrev=False,
        description="Look inside a trained run: writes RUN/inspect/gates.png (the input, "
                    "forget and output gates and the cell state of one test sequence over "
                    "time), gradient_flow.png (the mean ||dL/dh_t|| and ||dL/dc_t|| against "
                    "the lag from the loss, at initialisation and trained) and inspect.json "
                    "(those numbers, and gate statistics); with --which last, into "
                    "RUN/inspect-last/. The top LSTM layer, on the task's test data.")
    p.add_argument("run", help="a run folder, or its checkpoint.npz")
    p.add_argument("--which", choices=("best", "last"), default="best",
                   help="parameters of the best validation epoch (default), or of the last")
    p.add_argument("--device", choices=DEVICES, help="default: the device the run used")
    p.add_argument("--sequences", type=int, default=200,
                   help="test sequences the gradients are averaged over, at most as many as "
                        "the task's test data holds (default 200)")
    return p


@_quiet_on_broken_pipe
def inspect_main(argv=None) -> int:
    """``lstm-xp inspect``: gates and gradients through time of a saved run."""
    args = inspect_parser().parse_args(argv)
    try:
        from .inspect_run import inspect_run
        inspect_run(args.run, which=args.which, device=args.device,
                    sequences=positive_int_option("sequences", args.sequences))
    except ConfigError as err:
        return _fail(err.render(flag))
    except BackendUnavailableError as err:
        return _fail(str(err))
    except (CheckpointError, ValueError) as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(describe_os_error(err))
    return 0


def _dims(value_info) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + ")"


# ----------------------------------------------------------------------- lstm-xp
COMMANDS = {
    "train": (train_main, "train a model on a built-in task or your own series, and compare "
                          "it with baselines"),
    "predict": (predict_main, "forecast past the data, or sample text, with a trained run"),
    "export": (export_main, "write a trained run as an ONNX graph, raw inputs to raw outputs"),
    "inspect": (inspect_main, "draw a trained run's gates and its gradients through time"),
}


@_quiet_on_broken_pipe
def main(argv=None) -> int:
    """``lstm-xp COMMAND ...`` (and ``python -m lstm_xp``): run one of COMMANDS."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return EXIT_BAD_INPUT
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from .. import __version__
        print(f"lstm-xp {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        return _fail(f"unknown command {argv[0]!r}; the commands are "
                     f"{', '.join(COMMANDS)} (lstm-xp --help lists them)")
    return command[0](argv[1:])


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: lstm-xp COMMAND [options]     (or: python -m lstm_xp COMMAND ...)", "",
             "An LSTM written gate by gate, with hand-written backpropagation through time, "
             "on NumPy or CuPy.", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "lstm-xp COMMAND --help shows a command's options; lstm-xp --version its "
              "version."]
    return "\n".join(lines)


__all__ = ["main", "COMMANDS", "train_main", "predict_main", "export_main", "inspect_main",
           "train_parser", "predict_parser", "export_parser", "inspect_parser",
           "describe_os_error"]
