"""What the simplest tasks share: per-name defaults, no options that exclude each other, no
saved configs to mend, nothing of the data kept in the run folder, and a training step that
is one forward, one loss, one backward."""

from __future__ import annotations


class SimpleTask:
    """Mixed into a task class with ``DEFAULTS`` {task name: {field: value}} and ``loss``."""

    DEFAULTS: dict = {}

    @classmethod
    def defaults(cls, name: str) -> dict:
        return dict(cls.DEFAULTS[name])

    @classmethod
    def check_given(cls, cfg) -> None:
        """Nothing given can make another of this kind's options meaningless."""

    @classmethod
    def normalize_saved(cls, d: dict) -> None:
        """Nothing to change in a saved config of this kind."""

    def train_step(self, model, x, target):
        value = self.loss.forward(model.forward(x), target)
        model.backward(self.loss.backward())
        return value

    def keep_data(self, run_dir) -> list:
        """Copy into a new run folder what the run needs of its data (nothing: the data
        are built in, drawn from seeds, or named by the config); returns the files' names."""
        return []

    def kept_files(self) -> list:
        """The names :meth:`keep_data` writes."""
        return []
