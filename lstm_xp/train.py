"""``from lstm_xp.train import TrainConfig, train, resume, load_run`` keeps working: the
training job now lives in :mod:`lstm_xp.job`, and this module only re-exports its entry
points for code written before the move. Nothing in the library imports it."""

from .job import (RunInterrupted, RunResult, TrainConfig, TrainingDiverged, load_run, resume,
                  train)

__all__ = ["TrainConfig", "train", "resume", "load_run", "RunResult", "TrainingDiverged",
           "RunInterrupted"]
