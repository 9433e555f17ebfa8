"""The chars task: next-character prediction on a text, scored in bits per character
against unigram and bigram baselines."""

from __future__ import annotations

import codecs
import hashlib
import math

import numpy as np

from ...arrays import finite_checks
from ...losses import CrossEntropyLoss
from ...stream import CarriedState
from .. import baselines as bl
from ..data import Vocabulary, check_encoding, one_hot, read_text, stdlib_text, time_split
from ..models import CharModel
from ..options import ConfigError, positive_int_option, require


SAMPLE_CHUNK = 1024      # steps of uniforms drawn (and moved to the device) at once


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
    train_loss = "cross-entropy in nats per character"
    options = ("seq_len", "batches_per_epoch", "bptt", "text", "encoding", "max_chars")
    DEFAULTS = {"chars": dict(epochs=10, batch_size=32, hidden_size=128, lr=5e-3, seq_len=64,
                              batches_per_epoch=100, max_chars=200_000, encoding="utf-8")}
    predict_options = {
        "length": (int, 300, "characters to sample"),
        "prime": (str, "def ", "text to start from"),
        "temperature": (float, 0.8, "sampling temperature (> 0)"),
        "seed": (int, 0, "seeds the sampling"),
    }
    eval_streams = 16
    eval_chunk = 256

    @classmethod
    def defaults(cls, name: str) -> dict:
        return dict(cls.DEFAULTS[name])

    @classmethod
    def check_given(cls, cfg) -> None:
        """With ``bptt`` an epoch is one pass over the text in chunks of ``bptt``: random
        windows (``seq_len``, ``batches_per_epoch``) are not drawn."""
        for name in ("seq_len", "batches_per_epoch"):
            if cfg.bptt is not None and getattr(cfg, name) is not None:
                raise ConfigError(name, "{name} sets the random training windows, which "
                                  "{opt[bptt]} replaces by one pass over the text in chunks "
                                  "of {opt[bptt]} characters")

    @classmethod
    def normalize_saved(cls, d: dict) -> None:
        """Configs saved before streaming runs left them None hold the unused defaults of
        seq_len and batches_per_epoch: drop them, so that such runs still resume."""
        if d.get("bptt") is not None:
            d["seq_len"] = d["batches_per_epoch"] = None

    @classmethod
    def validate(cls, cfg) -> None:
        if cfg.bptt is not None:
            cfg.bptt = positive_int_option("bptt", cfg.bptt)
            cfg.seq_len = cfg.batches_per_epoch = None      # not used when streaming
        names = ("max_chars",) if cfg.bptt is not None else \
            ("seq_len", "batches_per_epoch", "max_chars")
        for name in names:
            setattr(cfg, name, positive_int_option(name, getattr(cfg, name)))
        require(cfg.text is None or isinstance(cfg.text, str), "text",
                "a path to a text file, or None", cfg.text)
        check_encoding(cfg.encoding)
        if cfg.text is None and codecs.lookup(cfg.encoding).name != "utf-8":
            raise ConfigError("encoding", "{name} is the encoding of the file given with "
                              "{opt[text]}; without one the text is the Python stdlib "
                              "sources, which are UTF-8")

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
        chunk, chunk_name = (bptt, "bptt") if bptt else (seq_len, "seq_len")
        for part, part_ids in self.ids.items():
            if len(part_ids) < max(chunk + 2, 2 * self.eval_streams):
                raise ValueError(f"the text is too short: its {part} part has {len(part_ids)} "
                                 f"characters, fewer than {chunk_name} + 2 = {chunk + 2}")
        self.loss = CrossEntropyLoss()

    @classmethod
    def from_config(cls, cfg):
        text, source = (read_text(cfg.text, cfg.max_chars, cfg.encoding) if cfg.text
                        else stdlib_text(cfg.max_chars))
        return cls(text, source, cfg.seq_len, cfg.bptt)

    def build_model(self, cfg):
        # one-hot input, not an Embedding: measured no faster (BENCHMARKS.md, "Decisions")
        return CharModel(len(self.vocab), cfg.hidden_size, cfg.num_layers, dtype=cfg.dtype,
                         device=cfg.device, seed=cfg.seed, dropout=cfg.dropout,
                         **cfg.cell_options())

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

    def reset_state(self) -> None:
        """Drop the carried stream state (a poisoned state would spread to later chunks)."""
        self.carry.reset()

    def _streams(self, split: str) -> np.ndarray:
        ids = self.ids[split]
        n = len(ids) // self.eval_streams
        return ids[:n * self.eval_streams].reshape(self.eval_streams, n)

    inspect_steps = 64

    def inspection(self, n: int) -> dict:
        """Up to ``n`` test windows of ``inspect_steps`` characters for ``lstm-xp inspect``
        (consecutive, non-overlapping): one-hot x (n, T, V), the id of the character after
        each window, and the first window's characters, to show."""
        ids, T = self.ids["test"], self.inspect_steps
        n = max(1, min(n, (len(ids) - 1) // T))
        windows = ids[:n * T].reshape(n, T)
        return {"x": one_hot(windows, len(self.vocab), "float64"),
                "target": ids[T:(n + 1) * T:T][:n],
                "shown": [self.vocab.chars[i] for i in windows[0]], "shown_label": "text"}

    def evaluate(self, model, split: str) -> float:
        streams = self._streams(split)
        V = len(self.vocab)
        state, total, count = None, 0.0, 0
        for lo in range(0, streams.shape[1] - 1, self.eval_chunk):
            hi = min(lo + self.eval_chunk, streams.shape[1] - 1)
            x = one_hot(streams[:, lo:hi], V, model.lstm.dtype_name)
            logits, state = model.forward(x, state, train=False)
            nats = self.loss.forward(logits, streams[:, lo + 1:hi + 1])
            weight = float((hi - lo) * streams.shape[0])
            total = total + model.backend.xp.astype(nats, model.backend.xp.float64) * weight
            count += (hi - lo) * streams.shape[0]
        return float(model.backend.to_numpy(total)) / count / math.log(2)

    def baselines(self) -> dict:
        streams = self._streams("test")
        contexts, targets = streams[:, :-1].ravel(), streams[:, 1:].ravel()
        V = len(self.vocab)
        return {"unigram": bl.unigram_bpc(self.ids["train"], targets, V),
                "bigram": bl.bigram_bpc(self.ids["train"], contexts, targets, V)}

    def sample(self, model, prime: str, length: int, temperature: float, rng) -> str:
        """``prime`` followed by ``length`` characters drawn from the model."""
        require(isinstance(prime, str) and len(prime) > 0, "prime",
                "at least one character", prime)
        unknown = sorted(set(prime) - set(self.vocab.chars))
        require(not unknown, "prime", f"made of the model's characters (it has no "
                f"{''.join(unknown[:10])!r})", prime)
        require(isinstance(temperature, (int, float)) and math.isfinite(temperature)
                and temperature > 0, "temperature", "a finite number > 0", temperature)
        require(not isinstance(length, bool) and isinstance(length, int) and length >= 0,
                "length", "an integer >= 0", length)
        V, dtype = len(self.vocab), model.lstm.dtype_name
        ids = list(self.vocab.encode(prime))
        backend = model.backend
        xp = backend.xp
        # Gumbel-max: argmax(z / temperature + G), G = -log(-log(U)), U ~ U(0, 1) drawn on the
        # host in chunks, is a draw from softmax(z / temperature); every step stays on the
        # device (no sync per character: the ids come back once, at the end)
        vocab = backend.arange(V)
        drawn = []
        with finite_checks(False):       # the inputs are one-hot rows made here
            logits, state = model.forward(one_hot(np.array([ids]), V, dtype), train=False)
            for first in range(0, length, SAMPLE_CHUNK):
                n = min(SAMPLE_CHUNK, length - first)
                u = np.maximum(rng.random((n, V)), np.finfo(np.float64).tiny)
                gumbel = backend.asarray(-np.log(-np.log(u)), dtype=logits.dtype)
                for k in range(n):
                    z = xp.reshape(logits, (-1, V))[-1, :] * (1.0 / temperature)
                    nxt = xp.argmax(z + gumbel[k, :])
                    drawn.append(nxt)
                    x = xp.reshape(xp.astype(vocab == nxt, logits.dtype), (1, 1, V))
                    logits, state = model.forward(x, state, train=False)
        if drawn:
            ids += [int(i) for i in backend.to_numpy(xp.stack(drawn))]
        return self.vocab.decode(ids)

    def predict_text(self, model, length: int = 300, prime: str = "def ",
                     temperature: float = 0.8, seed: int = 0) -> str:
        return self.sample(model, prime, length, temperature, np.random.default_rng(seed))

    def export_onnx(self, model, path, metadata: dict):
        """An ONNX graph from "ids" (B, T) int64 character indices (``vocabulary`` in the
        metadata maps them to characters) to "logits" (B, T, V) of the next character."""
        import json
        from ...onnx import GraphBuilder, add_lstm
        g = GraphBuilder(model.lstm.dtype_name)
        V = len(self.vocab)
        ids = g.input("ids", ["B", "T"], g.onnx.TensorProto.INT64)
        x = g.node("OneHot", [ids, g.const("depth", np.array(V, np.int64)),
                              g.const("off_on", np.array([0, 1], g.np_dtype))], axis=-1)
        y, _, _ = add_lstm(g, model.lstm, g.to_time_major(x))
        g.output(g.linear(g.to_time_major(y), model.head), "logits", ["B", "T", V])
        return g.save(path, "lstm_xp_chars", {
            "task": "chars", "vocabulary": json.dumps(self.vocab.chars), **metadata})

    def summary_line(self) -> str:
        return (f"{sum(len(v) for v in self.ids.values())} characters ({len(self.vocab)} "
                f"distinct) from {self.source}")

    def keep_data(self, run_dir) -> list:
        """Copy into a new run folder what the run needs of its data (nothing: the data
        are built in, or named by the config); returns the files' names."""
        return []

    def kept_files(self) -> list:
        """The names :meth:`keep_data` writes."""
        return []

    def write_outputs(self, model, run_dir, scores: dict, figures: bool) -> list:
        """samples.txt: 400 characters sampled at temperature 0.8 (no figure needed)."""
        prime = "def " if set("def ") <= set(self.vocab.chars) else self.vocab.chars[0]
        sample = self.sample(model, prime, 400, 0.8, np.random.default_rng(0))
        (run_dir / "samples.txt").write_text(sample + "\n", encoding="utf-8")
        return ["samples.txt"]

    def describe(self) -> dict:
        return {"source": self.source, "characters": sum(len(v) for v in self.ids.values()),
                "vocabulary": len(self.vocab), "chars": "".join(self.vocab.chars),
                "text_sha256": self.text_sha256, "seq_len": self.seq_len, "bptt": self.bptt,
                **{f"{k}_characters": len(v) for k, v in self.ids.items()}}
