"""Training tasks: what to learn, how to batch it, how to score it against baselines.

Two kinds, one protocol (used by ``lstm_xp.train``):

    task.metric                        "rmse" (series units) or "bpc" (bits per character)
    task.build_model(cfg)              a fresh model for this task
    task.steps_per_epoch(cfg)
    task.batches(rng, cfg)             an epoch of (x, target) host arrays, shuffled by rng
    task.train_step(model, x, target)  forward + loss + backward; returns the loss (device 0-d)
    task.evaluate(model, split)        the metric on "train" | "val" | "test"
    task.baselines()                   {name: metric on the same test points}
    task.describe()                    facts about the data for metrics.json
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from . import baselines as bl
from .data import (DeltaScaler, Vocabulary, load_series, make_windows, one_hot, read_text,
                   stdlib_text, time_split)
from .losses import CrossEntropyLoss, MSELoss
from .models import CharModel, SeriesForecaster
from .stream import CarriedState

SERIES_TASKS = ("seed", "sunspots", "co2")
TASKS = SERIES_TASKS + ("chars",)


class ForecastTask:
    """One-step-ahead forecasting of a built-in series from a window of past values.

    The series is cut in time order into train/val/test by the position of the value to
    forecast (70/15/15 %); windows are encoded relative to their last value
    (``data.DeltaScaler``, fitted on the training part only).
    """

    metric = "rmse"

    def __init__(self, name: str, window: int, fractions=(0.7, 0.15, 0.15)):
        self.series = load_series(name)
        values = self.series.values
        self.window = window
        windows = make_windows(values, window)
        bounds = time_split(len(values), fractions)
        self.split = {}
        for part, (lo, hi) in bounds.items():
            keep = (windows.index >= lo) & (windows.index < hi)
            if not keep.any():
                raise ValueError(f"window={window} leaves no {part} examples in the "
                                 f"{len(values)}-value series {name!r}; use a smaller window")
            self.split[part] = windows.subset(keep)
        self.scaler = DeltaScaler(values[:bounds["train"][1]])
        self.loss = MSELoss()

    def build_model(self, cfg):
        return SeriesForecaster(cfg.hidden_size, cfg.num_layers, dtype=cfg.dtype,
                                device=cfg.device, seed=cfg.seed)

    def steps_per_epoch(self, cfg) -> int:
        return math.ceil(len(self.split["train"]) / cfg.batch_size)

    def batches(self, rng, cfg):
        train = self.split["train"]
        x = self.scaler.encode_inputs(train.inputs).astype(cfg.dtype)
        y = self.scaler.encode_targets(train.inputs, train.targets).astype(cfg.dtype)
        order = rng.permutation(len(train))
        for start in range(0, len(order), cfg.batch_size):
            pick = order[start:start + cfg.batch_size]
            yield x[pick], y[pick]

    def train_step(self, model, x, target):
        value = self.loss.forward(model.forward(x), target)
        model.backward(self.loss.backward())
        return value

    def predict(self, model, inputs: np.ndarray) -> np.ndarray:
        """(N, W) raw windows -> (N,) one-step forecasts in the series' units."""
        dtype = model.lstm.dtype_name
        out = model.forward(self.scaler.encode_inputs(inputs).astype(dtype), train=False)
        return self.scaler.decode(inputs, model.backend.to_numpy(out))

    def evaluate(self, model, split: str) -> float:
        part = self.split[split]
        return bl.rmse(self.predict(model, part.inputs), part.targets)

    def baselines(self) -> dict:
        return bl.series_baselines(self.series.values, self.split["train"], self.split["test"],
                                   self.series.period)

    def baseline_forecasts(self) -> dict:
        """Each baseline's forecasts of the test targets (what :meth:`baselines` scores)."""
        return bl.series_forecasts(self.series.values, self.split["train"], self.split["test"],
                                   self.series.period)

    def describe(self) -> dict:
        return {"series": self.series.name, "points": len(self.series.values),
                "unit": self.series.unit, "window": self.window,
                "seasonal_period": self.series.period,
                **{f"{k}_examples": len(v) for k, v in self.split.items()},
                "test_span": [self.series.labels[self.split["test"].index[0]],
                              self.series.labels[self.split["test"].index[-1]]]}


class CharTask:
    """Next-character prediction on a text, scored in bits per character.

    The text is cut in time order into train/val/test (80/10/10 %). Training draws random
    windows of ``seq_len`` characters, or, with ``bptt`` set, reads the training text as
    ``batch_size`` parallel streams in consecutive chunks of ``bptt`` characters, carrying
    the LSTM state from chunk to chunk (truncated BPTT, ``lstm_xp.stream``); one epoch is
    then one pass over the text. Evaluation reads each split as 16 parallel
    contiguous streams, carrying the LSTM state across chunks, and scores every character
    after the first of each stream (the baselines are scored on exactly those positions).
    """

    metric = "bpc"
    eval_streams = 16
    eval_chunk = 256

    def __init__(self, text: str, source: str, seq_len: int, bptt: int | None = None,
                 fractions=(0.8, 0.1, 0.1)):
        self.bptt = bptt
        self.carry = CarriedState()
        self.text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.source = source
        self.vocab = Vocabulary(text)
        ids = self.vocab.encode(text)
        self.seq_len = seq_len
        bounds = time_split(len(ids), fractions)
        self.ids = {part: ids[lo:hi] for part, (lo, hi) in bounds.items()}
        for part, part_ids in self.ids.items():
            if len(part_ids) < max(seq_len + 2, 2 * self.eval_streams):
                raise ValueError(f"the text is too short: its {part} part has {len(part_ids)} "
                                 f"characters, fewer than seq_len + 2 = {seq_len + 2}")
        self.loss = CrossEntropyLoss()

    @classmethod
    def from_config(cls, cfg):
        text, source = (read_text(cfg.text, cfg.max_chars) if cfg.text
                        else stdlib_text(cfg.max_chars))
        return cls(text, source, cfg.seq_len, cfg.bptt)

    def build_model(self, cfg):
        return CharModel(len(self.vocab), cfg.hidden_size, cfg.num_layers, dtype=cfg.dtype,
                         device=cfg.device, seed=cfg.seed)

    def _stream_length(self, cfg) -> int:
        n = (len(self.ids["train"]) - self.bptt) // cfg.batch_size
        if n < 2:
            raise ValueError(f"the training text ({len(self.ids['train'])} characters) is too "
                             f"short for {cfg.batch_size} streams with bptt={self.bptt}")
        return n

    def steps_per_epoch(self, cfg) -> int:
        if self.bptt:
            return math.ceil((self._stream_length(cfg) - 1) / self.bptt)
        return cfg.batches_per_epoch

    def batches(self, rng, cfg):
        train, V = self.ids["train"], len(self.vocab)
        self.carry.reset()
        if self.bptt:
            # batch_size streams of n characters each, starting at a random offset so that
            # chunk boundaries move from epoch to epoch
            n, T = self._stream_length(cfg), self.bptt
            offset = int(rng.integers(0, T))
            rows = train[offset:offset + cfg.batch_size * n].reshape(cfg.batch_size, n)
            for lo in range(0, n - 1, T):
                hi = min(lo + T, n - 1)
                yield one_hot(rows[:, lo:hi], V, cfg.dtype), rows[:, lo + 1:hi + 1]
            return
        T = self.seq_len
        for _ in range(cfg.batches_per_epoch):
            starts = rng.integers(0, len(train) - T - 1, size=cfg.batch_size)
            rows = train[starts[:, None] + np.arange(T + 1)]
            yield one_hot(rows[:, :-1], V, cfg.dtype), rows[:, 1:]

    def train_step(self, model, x, target):
        if self.bptt:                    # streaming: start from where the last chunk ended
            logits, state = model.forward(x, self.carry.state)
            self.carry.keep(state)
        else:                            # random windows are unrelated: start from zeros
            logits, _ = model.forward(x)
        value = self.loss.forward(logits, target)
        model.backward(self.loss.backward())
        return value

    def _streams(self, split: str) -> np.ndarray:
        ids = self.ids[split]
        n = len(ids) // self.eval_streams
        return ids[:n * self.eval_streams].reshape(self.eval_streams, n)

    def evaluate(self, model, split: str) -> float:
        streams = self._streams(split)
        V = len(self.vocab)
        state, total, count = None, 0.0, 0
        for lo in range(0, streams.shape[1] - 1, self.eval_chunk):
            hi = min(lo + self.eval_chunk, streams.shape[1] - 1)
            x = one_hot(streams[:, lo:hi], V, model.lstm.dtype_name)
            logits, state = model.forward(x, state, train=False)
            nats = self.loss.forward(logits, streams[:, lo + 1:hi + 1])
            total += float(nats) * (hi - lo) * streams.shape[0]
            count += (hi - lo) * streams.shape[0]
        return total / count / math.log(2)

    def baselines(self) -> dict:
        streams = self._streams("test")
        contexts, targets = streams[:, :-1].ravel(), streams[:, 1:].ravel()
        V = len(self.vocab)
        return {"unigram": bl.unigram_bpc(self.ids["train"], targets, V),
                "bigram": bl.bigram_bpc(self.ids["train"], contexts, targets, V)}

    def sample(self, model, prime: str, length: int, temperature: float, rng) -> str:
        """``prime`` followed by ``length`` characters drawn from the model."""
        if not prime:
            raise ValueError("prime must hold at least one character")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
                and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be an integer >= 0, got {length!r}")
        V, dtype = len(self.vocab), model.lstm.dtype_name
        ids = list(self.vocab.encode(prime))
        logits, state = model.forward(one_hot(np.array([ids]), V, dtype), train=False)
        for _ in range(length):
            z = model.backend.to_numpy(logits)[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            nxt = int(rng.choice(V, p=p / p.sum()))
            ids.append(nxt)
            logits, state = model.forward(one_hot(np.array([[nxt]]), V, dtype), state, train=False)
        return self.vocab.decode(ids)

    def describe(self) -> dict:
        return {"source": self.source, "characters": sum(len(v) for v in self.ids.values()),
                "vocabulary": len(self.vocab), "chars": "".join(self.vocab.chars),
                "text_sha256": self.text_sha256, "seq_len": self.seq_len, "bptt": self.bptt,
                **{f"{k}_characters": len(v) for k, v in self.ids.items()}}


def build_task(cfg):
    if cfg.task in SERIES_TASKS:
        return ForecastTask(cfg.task, cfg.window)
    if cfg.task == "chars":
        return CharTask.from_config(cfg)
    raise ValueError(f"unknown task {cfg.task!r}; choose one of {TASKS}")
