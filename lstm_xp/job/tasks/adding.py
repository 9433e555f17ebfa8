"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4, in the form of Le, Jaitly
& Hinton 2015): a test of carrying information across a whole sequence.

Each sequence has T steps of two inputs (u_t, m_t): u_t ~ U(0, 1), and m_t = 1 at exactly
two steps, one in each half (m_t = 0 elsewhere). The target is the sum of the two marked
u_t, so the model must remember the first one for up to T steps. Predicting 1 (the mean
of the target) always scores MSE 1/6 ~ 0.167: a model that has not learnt to carry the
marked values stays there; MSE < 0.01 counts as solved.
"""

from __future__ import annotations

import numpy as np

from ...losses import MSELoss
from ..models import SeriesForecaster
from ..options import ConfigError, positive_int_option
from .base import SimpleTask

SOLVED_MSE = 0.01
CONSTANT_MSE = 1.0 / 6.0       # var(u_a + u_b) = 2 / 12: the MSE of always predicting 1
# the validation and test sets are the same for every run (and seed) of a length
SPLIT_SEEDS = {"val": 2015_1, "test": 2015_2}
SPLIT_SIZES = {"val": 500, "test": 1000}


def adding_examples(rng, n: int, T: int):
    """n sequences of the adding problem: x (n, T, 2) float64 columns (u_t, m_t) and the
    targets (n,) = the sum of the two marked u_t (one marker in each half)."""
    u = rng.random((n, T))
    first = rng.integers(0, T // 2, n)
    second = rng.integers(T // 2, T, n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = markers[rows, second] = 1.0
    return np.stack([u, markers], axis=2), u[rows, first] + u[rows, second]


class AddingTask(SimpleTask):
    """The adding problem at sequence length ``seq_len``: fresh training sequences drawn for
    every batch from the run's seeded generator, fixed validation and test sets; an LSTM
    reads the sequence and a linear head maps its last hidden state to the sum. Scored in
    MSE against always predicting 1 (1/6)."""

    metric = "mse"
    train_loss = "MSE of the sum"
    options = ("seq_len", "batches_per_epoch")
    DEFAULTS = {"adding": dict(epochs=10, batch_size=64, hidden_size=64, lr=1e-2, seq_len=100,
                               batches_per_epoch=200)}
    predict_options = {"examples": (int, 5, "test sequences to show"),
                       "seed": (int, 0, "seeds which test sequences are shown")}

    @classmethod
    def validate(cls, cfg) -> None:
        for name in cls.options:
            setattr(cfg, name, positive_int_option(name, getattr(cfg, name)))
        if cfg.seq_len < 2:
            raise ConfigError("seq_len", "{name} must be at least 2 for the adding problem "
                              "(a marker in each half), got {got}", got=cfg.seq_len)

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.seq_len)

    def __init__(self, seq_len: int):
        self.task_name = "adding"
        self.seq_len = seq_len
        self.split = {part: adding_examples(np.random.default_rng(SPLIT_SEEDS[part]),
                                            SPLIT_SIZES[part], seq_len)
                      for part in SPLIT_SEEDS}
        self.loss = MSELoss()

    def build_model(self, cfg):
        return SeriesForecaster(cfg.hidden_size, cfg.num_layers, dtype=cfg.dtype,
                                device=cfg.device, seed=cfg.seed, dropout=cfg.dropout,
                                input_size=2, **cfg.cell_options())

    def steps_per_epoch(self, cfg) -> int:
        return cfg.batches_per_epoch

    def batches(self, rng, cfg):
        for _ in range(cfg.batches_per_epoch):
            x, target = adding_examples(rng, cfg.batch_size, self.seq_len)
            yield x.astype(cfg.dtype), target[:, None].astype(cfg.dtype)

    def reset_state(self) -> None:
        """Nothing to forget: every sequence starts from a zero state."""

    def predict(self, model, x: np.ndarray) -> np.ndarray:
        """(N, T, 2) sequences -> (N,) predicted sums."""
        out = model.forward(x.astype(model.lstm.dtype_name), train=False)
        return model.backend.to_numpy(out)[:, 0].astype(np.float64)

    def inspection(self, n: int) -> dict:
        """Up to ``n`` test sequences for ``lstm-xp inspect``: x (n, T, 2), the sums, and
        the first sequence's u_t (marked steps flagged) to show."""
        x, target = self.split["test"]
        return {"x": x[:n], "target": target[:n], "shown": [float(v) for v in x[0, :, 0]],
                "marked": [int(t) for t in np.flatnonzero(x[0, :, 1])], "shown_label": "u_t"}

    def evaluate(self, model, split: str) -> float:
        """MSE on "val" or "test" (training sequences are never reused: no "train" split)."""
        x, target = self.split[split]
        return float(np.mean((self.predict(model, x) - target) ** 2))

    def baselines(self) -> dict:
        """Always predicting 1, scored on the test set (about 1/6)."""
        _, target = self.split["test"]
        return {"constant_1": float(np.mean((1.0 - target) ** 2))}

    def predict_text(self, model, examples: int = 5, seed: int = 0) -> str:
        examples = positive_int_option("examples", examples)
        x, target = self.split["test"]
        pick = np.random.default_rng(seed).choice(len(target), min(examples, len(target)),
                                                  replace=False)
        got = self.predict(model, x[pick])
        lines = [f"# adding, T = {self.seq_len}: test sequences (their marked steps and "
                 f"values), the target sum and the model's prediction"]
        for row, value in zip(pick, got):
            steps = np.flatnonzero(x[row, :, 1])
            marked = ", ".join(f"t={t}: {x[row, t, 0]:.4f}" for t in steps)
            lines.append(f"{marked}\ttarget {target[row]:.4f}\tpredicted {value:.4f}")
        return "\n".join(lines)

    def export_onnx(self, model, path, metadata: dict):
        """An ONNX graph from "x" (B, T, 2) float64 sequences (u_t, m_t) to "sum" (B,)."""
        from ...onnx import GraphBuilder, add_lstm
        g = GraphBuilder(model.lstm.dtype_name)
        f64 = g.onnx.TensorProto.DOUBLE
        x = g.input("x", ["B", self.seq_len, 2], f64)
        _, h_n, _ = add_lstm(g, model.lstm, g.to_time_major(g.node("Cast", [x], to=g.elem)))
        L = model.lstm.num_layers
        top = g.node("Squeeze", [g.slice0(h_n, L - 1, L), g.axes(0)])          # (B, H)
        out = g.node("Cast", [g.linear(top, model.head)], to=f64)             # (B, 1)
        g.output(g.node("Squeeze", [out, g.axes(1)]), "sum", ["B"], f64)
        return g.save(path, "lstm_xp_adding", {"task": "adding", "seq_len": self.seq_len,
                                               **metadata})

    def summary_line(self) -> str:
        return (f"T = {self.seq_len} steps of (u_t, marker), fresh training sequences every "
                f"batch, val/test sequences {SPLIT_SIZES['val']}/{SPLIT_SIZES['test']}; "
                f"always predicting 1 scores MSE {CONSTANT_MSE:.3f}, solved below "
                f"{SOLVED_MSE}")

    def write_outputs(self, model, run_dir, scores: dict, figures: bool) -> list:
        """No figure of its own: ``lstm-xp inspect`` draws the gates and gradients."""
        return []

    def describe(self) -> dict:
        return {"seq_len": self.seq_len, "val_sequences": SPLIT_SIZES["val"],
                "test_sequences": SPLIT_SIZES["test"], "solved_below_mse": SOLVED_MSE,
                "constant_mse": CONSTANT_MSE}
