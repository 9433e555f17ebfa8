"""Training tasks: what to learn, how to batch it, how to score it against baselines.

Four kinds, one protocol, a module each: the built-in series (series.py), a user's CSV
series (user_series.py), text (chars.py), the adding problem (adding.py). ``lstm_xp.job.train`` asks the task for
everything that differs between kinds and never branches on which task it runs:

    Task.defaults(name)                per-task defaults of TrainConfig fields
    Task.options                       TrainConfig fields only this kind takes
    Task.validate(cfg)                 checks (and normalises) those fields
    Task.from_config(cfg)              the task, data loaded
    Task.from_run(cfg, run_dir, resuming)   (optional) the task of a saved run, from what
                                       the run folder keeps (a CSV series: its own copy)
    task.metric, task.train_loss       what is scored, and what "train loss" measures
    task.build_model(cfg)              a fresh model for this task
    task.steps_per_epoch(cfg)
    task.batches(rng, cfg)             an epoch of (x, target) host arrays, shuffled by rng
    task.train_step(model, x, target)  forward + loss + backward; returns the loss (device 0-d)
    task.reset_state()                 forget state carried between steps (after a bad step)
    task.evaluate(model, split)        the metric on "train" | "val" | "test"
    task.baselines()                   {name: metric on the same test points}
    task.summary_line(), task.describe()   one line for people; facts for metrics.json
    task.keep_data(run_dir), task.kept_files()   what a new run folder keeps of the data
    task.write_outputs(model, run_dir, scores, figures)   forecast.png / samples.txt
    Task.predict_options, task.predict_text(model, **options)   what lstm-xp predict does
"""

from __future__ import annotations

from ..options import ConfigError
from .adding import AddingTask
from .chars import CharTask
from .series import ForecastTask
from .user_series import CsvSeriesTask

# the tasks chosen by name (``--task``)
TASKS = {"seed": ForecastTask, "sunspots": ForecastTask, "co2": ForecastTask,
         "chars": CharTask, "adding": AddingTask}
# tasks whose data the user gives (``--series PATH``); a run of one records its kind here
FILE_TASKS = {"series": CsvSeriesTask}
KINDS = {**TASKS, **FILE_TASKS}


def task_names() -> tuple:
    return tuple(TASKS)


def task_class(name: str):
    """The class behind task ``name``; ConfigError naming the choices otherwise."""
    if name in FILE_TASKS:
        return FILE_TASKS[name]
    if name not in TASKS:
        raise ConfigError("task", "{name} must be one of {choices}, got {got!r}",
                          choices=task_names(), got=name)
    return TASKS[name]


def tasks_taking(option: str) -> list:
    """The names of the tasks whose kind takes ``option`` (a TrainConfig field)."""
    return [name for name, kind in TASKS.items() if option in kind.options]


def build_task(cfg, run_dir=None, resuming: bool = False):
    """The task of ``cfg``: its data loaded, or, for a saved run (``run_dir``), rebuilt from
    what the run folder keeps where its kind keeps something (``Task.from_run``)."""
    kind = task_class(cfg.task)
    if run_dir is not None and hasattr(kind, "from_run"):
        return kind.from_run(cfg, run_dir, resuming)
    return kind.from_config(cfg)
