"""The main job end to end (tiny epochs), checkpoints, resume, and the data/baselines it uses."""

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from backends import BackendUnavailableError, get_backend
from lstm_xp.job import baselines as bl
from lstm_xp.job.data import (DeltaScaler, Vocabulary, load_series, make_windows, max_window,
                             min_length, seed_series, split_windows, time_split)
from lstm_xp.job.train import TrainConfig, load_run, resume, train

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "seed": ["--epochs", "4", "--hidden-size", "8"],
    "sunspots": ["--epochs", "4", "--hidden-size", "8"],
    "co2": ["--epochs", "4", "--hidden-size", "8"],
    "chars": ["--epochs", "3", "--hidden-size", "16", "--seq-len", "16",
              "--batches-per-epoch", "20", "--max-chars", "20000", "--lr", "0.01"],
}


def run_script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("task", sorted(TINY))
def test_each_task_trains_end_to_end(task, tmp_path):
    out = tmp_path / task
    done = run_script("--task", task, "--out", str(out), "--no-progress", *TINY[task])
    assert done.returncode == 0, done.stderr
    figure = "samples.txt" if task == "chars" else "forecast.png"
    for name in ("config.json", "checkpoint.npz", "metrics.json", "loss_curve.png", figure):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    metric = "bpc" if task == "chars" else "rmse"
    assert metrics["task"] == task and metrics["device"] == "cpu"
    assert math.isfinite(metrics[f"test_{metric}"]) and metrics["epochs"] == int(TINY[task][1])
    want = {"unigram", "bigram"} if task == "chars" else {"persistence", "seasonal_naive", "linear_ar"}
    assert set(metrics["baselines"]) == want
    assert metrics["wall_seconds"] > 0
    history = json.loads((out / "config.json").read_text())
    assert history["task"] == task
    from lstm_xp.job.checkpoint import load_checkpoint
    losses = [h["train_loss"] for h in load_checkpoint(out / "checkpoint.npz").extra["history"]]
    assert losses[-1] < losses[0], losses
    # the summary names every baseline next to the LSTM's score
    assert "lstm" in done.stdout and all(name in done.stdout for name in want)
    if figure == "forecast.png":
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gpu_request_without_gpu_is_one_sentence_and_nonzero(tmp_path):
    try:
        get_backend("gpu")
        pytest.skip("a GPU is usable here")
    except BackendUnavailableError:
        pass
    done = run_script("--device", "gpu", "--out", str(tmp_path / "g"), "--no-progress")
    assert done.returncode == 2
    assert done.stderr.startswith("error: device 'gpu'") and done.stderr.count("\n") == 1
    assert not (tmp_path / "g" / "checkpoint.npz").exists()


def quiet(*_):
    pass


def tiny_config(**kw):
    return TrainConfig(task="sunspots", epochs=4, hidden_size=8, **kw)


def test_checkpoint_reload_gives_identical_predictions(tmp_path):
    result = train(tiny_config(), tmp_path / "r", progress=False, echo=quiet)
    inputs = result.task.split["test"].inputs
    want = result.task.predict(result.model, inputs)          # best parameters
    _, task, model = load_run(tmp_path / "r")
    np.testing.assert_array_equal(task.predict(model, inputs), want)


@pytest.mark.parametrize("kw", [{}, dict(num_layers=2, dropout=0.3)], ids=["plain", "dropout"])
def test_resume_continues_from_the_saved_epoch_and_matches_one_long_run(tmp_path, kw):
    long = train(tiny_config(**kw), tmp_path / "long", progress=False, echo=quiet)
    train(replace(tiny_config(**kw), epochs=2), tmp_path / "split", progress=False, echo=quiet)
    get_backend("cpu").manual_seed(123)       # whatever happened in between: the run restores it
    lines = []
    resumed = resume(tmp_path / "split", epochs=4, progress=False, echo=lines.append)
    assert any("resuming after epoch 2 of 4" in line for line in lines)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(long.history, resumed.history):
        assert a["train_loss"] == b["train_loss"] and a["val_rmse"] == b["val_rmse"]
    from lstm_xp.job.checkpoint import load_checkpoint
    one = load_checkpoint(tmp_path / "long" / "checkpoint.npz")
    two = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    for store in ("model", "best", "optim"):
        a, b = getattr(one, store), getattr(two, store)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{store}/{key}")


def test_train_refuses_to_overwrite_a_run(tmp_path):
    train(replace(tiny_config(), epochs=1), tmp_path / "r", progress=False, echo=quiet)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny_config(), tmp_path / "r", progress=False, echo=quiet)


@pytest.mark.parametrize("field, value, match", [
    ("task", "weather", "task must be one of"),
    ("epochs", 0, "epochs must be a positive integer"),
    ("lr", -1.0, "lr must be a number > 0"),
    ("optimizer", "rmsprop", "optimizer must be one of"),
    ("window", 0, "window must be a positive integer"),
])
def test_bad_config_is_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        replace(TrainConfig(), **{field: value}).resolved()


# ------------------------------------------------------------------ data
def test_seed_series_is_the_formula():
    s = seed_series()
    x = -70 + 0.1 * np.arange(800)
    assert len(s.values) == 800 and s.labels[0] == "x=-70.0" and s.labels[-1] == "x=9.9"
    noise = (s.values - np.sin(x) - np.exp((x + 20) * 0.05)) / 0.1
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1


def test_real_series_load():
    sun, co2 = load_series("sunspots"), load_series("co2")
    assert len(sun.values) == 309 and sun.labels[0] == "1700" and sun.values[0] == 5.0
    assert len(co2.values) == 526 and co2.labels[0] == "1958-03" and co2.labels[-1] == "2001-12"
    assert 300 < co2.values.min() and co2.values.max() < 380
    with pytest.raises(ValueError, match="unknown series"):
        load_series("weather")


def test_windows_splits_and_scaler():
    values = np.arange(10.0) ** 2
    w = make_windows(values, 3)
    assert w.inputs.shape == (7, 3) and w.targets.shape == (7, 1) and w.extra.shape == (7, 3, 0)
    np.testing.assert_array_equal(w.inputs[0], [0, 1, 4])
    assert w.targets[0, 0] == 9 and w.index[0] == 3
    assert time_split(100) == {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
    scaler = DeltaScaler(values[:6])
    enc_x, enc_y = scaler.encode_inputs(w.inputs), scaler.encode_targets(w.inputs, w.targets)
    assert enc_x.shape == (7, 3, 1) and np.all(enc_x[:, -1, 0] == 0)
    np.testing.assert_allclose(scaler.decode(w.inputs, enc_y), w.targets)
    with pytest.raises(ValueError, match="window \\+ horizon must be at most 10"):
        make_windows(values, 10)


def test_windows_of_several_steps_ahead_with_other_features():
    values = np.arange(10.0) ** 2
    extra = np.stack([np.arange(10.0), -np.arange(10.0)], axis=1)      # (n, F = 2)
    w = make_windows(values, 3, horizon=2, extra=extra)
    assert len(w) == 10 - 3 - 2 + 1
    np.testing.assert_array_equal(w.targets[0], [9, 16])              # positions 3 and 4
    np.testing.assert_array_equal(w.targets[-1], [64, 81])
    np.testing.assert_array_equal(w.extra[1], [[1, -1], [2, -2], [3, -3]])   # steps 1..3
    parts = split_windows(w, {"train": (0, 5), "val": (5, 7), "test": (7, 10)})
    # an example belongs to a part only when both its targets lie inside it
    assert parts["train"].index.tolist() == [3] and parts["val"].index.tolist() == [5]
    assert parts["test"].index.tolist() == [7, 8]
    scaler = DeltaScaler(values[:5])
    np.testing.assert_allclose(scaler.decode(w.inputs, scaler.encode_targets(w.inputs,
                                                                             w.targets)),
                               w.targets)
    assert max_window(100, horizon=1) == 69 and max_window(100, horizon=5) == 65
    assert max_window(100, horizon=16) == 0                  # the 15-value parts hold no target
    # n = 26: parts 18/4/4 hold window 10 + 4 targets, and 4 and 4 targets; n = 25: 18/4/3
    assert min_length(10, horizon=4) == 26 and max_window(25, horizon=4) == 0


def test_series_baselines_on_known_cases():
    t = np.arange(60)
    periodic = np.sin(2 * np.pi * t / 12)
    assert bl.rmse(bl.seasonal_naive(periodic, np.arange(24, 60), 12),
                   periodic[24:, None]) < 1e-12
    shocks = np.random.default_rng(0).standard_normal(5000)
    ar = np.zeros(5000)
    for i in range(2, 5000):
        ar[i] = 0.6 * ar[i - 1] - 0.3 * ar[i - 2] + shocks[i]
    w = make_windows(ar, 2)
    model = bl.LinearAR().fit(w.inputs, w.targets)
    np.testing.assert_allclose(model.coef[:2, 0], [-0.3, 0.6], atol=0.05)   # window: oldest first
    np.testing.assert_array_equal(bl.persistence(w.inputs), w.inputs[:, -1:])
    with pytest.raises(ValueError, match="scored against targets of shape"):
        bl.rmse(bl.persistence(w.inputs), w.targets[:, 0])      # never broadcast


def test_series_baselines_several_steps_ahead_by_hand():
    values = np.arange(30.0)
    # seasonal naive, m = 4, from t = 10: steps k = 0..5 take values[10 + k - 4 (k // 4 + 1)]
    np.testing.assert_array_equal(bl.seasonal_naive(values, np.array([10]), 4, 6)[0],
                                  [6, 7, 8, 9, 6, 7])
    np.testing.assert_array_equal(bl.persistence(np.array([[1.0, 5.0]]), 3), [[5, 5, 5]])
    # direct linear AR: y_{t+k} = y_{t-1} + (k + 1) on a line is fitted exactly, per k
    w = make_windows(values, 3, horizon=3)
    ar = bl.LinearAR().fit(w.inputs, w.targets)
    np.testing.assert_allclose(ar.predict(np.array([[100.0, 101.0, 102.0]])),
                               [[103, 104, 105]], atol=1e-9)


def test_text_baselines_by_hand():
    vocab = Vocabulary("ab")
    train_ids = vocab.encode("aab")                # counts a:2 b:1, pairs aa:1 ab:1
    targets = vocab.encode("ab")
    # unigram add-one: P(a) = 3/5, P(b) = 2/5
    want = -(np.log2(3 / 5) + np.log2(2 / 5)) / 2
    assert bl.unigram_bpc(train_ids, targets, 2) == pytest.approx(want)
    # bigram add-one: P(b | a) = (1 + 1) / (2 + 2); P(a | b) = (0 + 1) / (0 + 2)
    contexts = vocab.encode("ab")
    nxt = vocab.encode("ba")
    want = -(np.log2(2 / 4) + np.log2(1 / 2)) / 2
    assert bl.bigram_bpc(train_ids, contexts, nxt, 2) == pytest.approx(want)


def test_summary_calls_close_scores_a_tie():
    from lstm_xp.job.train import _summary, _verdict
    assert _verdict(1.0, 1.2) == "beats"
    assert _verdict(1.0, 1.03) == "ties" and _verdict(1.03, 1.0) == "ties"
    assert _verdict(1.2, 1.0) == "beaten by"
    scores = {"persistence": 2.0, "linear_ar": 1.02, "oracle": 0.5}
    text = _summary("rmse", 1.0, scores, {k: _verdict(1.0, v) for k, v in scores.items()})
    assert text.splitlines()[-1] == ("The LSTM beats persistence; ties with linear_ar; "
                                     "is beaten by oracle on this task.")


class _FixedLogits:
    """A stand-in char model whose next-character logits are always ``z`` (1, 1, V)."""

    def __init__(self, z):
        self.backend = get_backend("cpu")
        self.lstm = type("L", (), {"dtype_name": "float64"})()
        self.z = np.asarray(z, dtype=np.float64).reshape(1, 1, -1)
        self.inputs = []

    def forward(self, x, state=None, train=None):
        self.inputs.append(np.array(x))
        return self.z, state


def test_sampling_draws_from_the_tempered_softmax_and_feeds_back_each_character():
    from lstm_xp.job.tasks import CharTask
    task = CharTask.__new__(CharTask)
    task.vocab = Vocabulary("abcd")
    z, temperature, n = np.array([2.0, 0.5, -1.0, 0.0]), 0.8, 20_000
    model = _FixedLogits(z)
    text = task.sample(model, "ab", n, temperature, np.random.default_rng(5))
    assert text.startswith("ab") and len(text) == 2 + n
    drawn = task.vocab.encode(text[2:])
    p = np.exp(z / temperature) / np.exp(z / temperature).sum()
    freq = np.bincount(drawn, minlength=4) / n
    # within 5 standard errors of each probability
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n))
    # each drawn character is the next input, one-hot
    fed = np.array([x.reshape(-1) for x in model.inputs[1:]])
    np.testing.assert_array_equal(fed.argmax(axis=1), drawn)
    np.testing.assert_array_equal(fed.sum(axis=1), 1)
    again = task.sample(_FixedLogits(z), "ab", n, temperature, np.random.default_rng(5))
    assert again == text


def test_cell_variant_options_reach_the_model_and_the_saved_config(tmp_path):
    cfg = TrainConfig(task="seed", epochs=1, hidden_size=4, peephole=True, zoneout=0.2,
                      weight_drop=0.3)
    result = train(cfg, tmp_path / "run", progress=False, echo=lambda *_: None)
    lstm = result.model.lstm
    assert (lstm.cell.peephole, lstm.cell.zoneout, lstm.cell.weight_drop) == \
        (True, (0.2, 0.2), 0.3)
    assert "lstm.weight_ci_l0" in result.model.params
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["peephole"] is True and saved["weight_drop"] == 0.3
    _, _, model = load_run(tmp_path / "run")
    assert model.lstm.cell == lstm.cell


def test_compare_cells_runs_and_writes_its_table(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_cells.py"), "--quick",
                          "--seeds", "1", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    table = (tmp_path / "compare_cells.md").read_text()
    for name in ("plain", "peephole", "layer_norm", "zoneout", "recurrent_dropout",
                 "weight_drop"):
        assert f"| {name}" in table
    assert (tmp_path / "compare_cells.png").stat().st_size > 0
