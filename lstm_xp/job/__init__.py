"""The training job: a run folder from a config, and what a run folder gives back.

    from lstm_xp.job import TrainConfig, train, resume, load_run
    result = train(TrainConfig(task="sunspots", epochs=40), "runs/sunspots")
    result = resume("runs/sunspots", epochs=80)      # continue where it stopped
    cfg, task, model = load_run("runs/sunspots")    # best parameters, ready to predict

``lstm-xp train | predict | export`` (``cli.py``) is this package on the command line.
Modules: config (TrainConfig), train (the loop, resume, load_run), tasks/ (one module per
kind of task), data, baselines, models, plots, checkpoint, export (a run as ONNX), options
(ConfigError). The package builds on the library (``lstm_xp``), never the other way round.
"""

from .config import TrainConfig
from .train import RunInterrupted, RunResult, TrainingDiverged, load_run, resume, train

__all__ = ["TrainConfig", "train", "resume", "load_run", "RunResult", "TrainingDiverged",
           "RunInterrupted"]
