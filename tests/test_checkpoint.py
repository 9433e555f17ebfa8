"""Checkpoints survive interruption and reject bad files; non-finite steps stop or skip."""

import json

import numpy as np
import pytest

import lstm_xp.job.checkpoint as ckpt_mod
from lstm_xp.job.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from lstm_xp.job.tasks import ForecastTask
from lstm_xp.job.train import TrainConfig, TrainingDiverged, train


def sample_checkpoint(value=1.0):
    return Checkpoint(epoch=3, config={"task": "seed"}, rng={"state": 7},
                      model={"lstm.weight_ih_l0": np.full((4, 2), value)},
                      optim={"steps": np.asarray(5)}, best={"lstm.weight_ih_l0": np.zeros((4, 2))},
                      extra={"history": [1, 2, 3]})


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample_checkpoint())
    back = load_checkpoint(path)
    assert back.epoch == 3 and back.config == {"task": "seed"} and back.rng == {"state": 7}
    np.testing.assert_array_equal(back.model["lstm.weight_ih_l0"], np.ones((4, 2)))
    assert back.extra["history"] == [1, 2, 3] and int(back.optim["steps"]) == 5


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", sample_checkpoint(1.0))

    def dies_halfway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(ckpt_mod.np, "savez", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, sample_checkpoint(2.0))
    monkeypatch.undo()
    np.testing.assert_array_equal(load_checkpoint(path).model["lstm.weight_ih_l0"], 1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]      # no temp file left


def test_truncated_and_corrupted_files_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample_checkpoint())
    data = path.read_bytes()
    (tmp_path / "short.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="short.npz is not an lstm-xp checkpoint, or is truncated"):
        load_checkpoint(tmp_path / "short.npz")
    flipped = bytearray(data)
    start = data.index(b"lstm.weight_ih_l0") + 200                 # inside that member's bytes
    for i in range(start, start + 16):
        flipped[i] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="bad.npz"):
        load_checkpoint(tmp_path / "bad.npz")


def test_foreign_files_are_named(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt is not an lstm-xp checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(CheckpointError, match="no 'meta' entry"):
        load_checkpoint(tmp_path / "other.npz")
    np.save(tmp_path / "bare.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="a bare .npy array"):
        load_checkpoint(tmp_path / "bare.npy")
    np.savez(tmp_path / "alien.npz", meta=np.array(json.dumps({"format": "keras"})))
    with pytest.raises(CheckpointError, match="alien.npz is not an lstm-xp checkpoint"):
        load_checkpoint(tmp_path / "alien.npz")
    np.savez(tmp_path / "future.npz",
             meta=np.array(json.dumps({"format": "lstm-xp-checkpoint", "version": 2})))
    with pytest.raises(CheckpointError, match="format version 2; this lstm-xp reads version 1"):
        load_checkpoint(tmp_path / "future.npz")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz")


def poison_step(monkeypatch, epoch, step, where="loss"):
    """Make ForecastTask.train_step produce a non-finite loss or gradient at (epoch, step)."""
    real = ForecastTask.train_step
    calls = {"n": 0}

    def train_step(self, model, x, target):
        value = real(self, model, x, target)
        calls["n"] += 1
        if calls["n"] == (epoch - 1) * calls["per_epoch"] + step:
            if where == "loss":
                return value * float("nan")
            model.layers["lstm"].grads["weight_hh_l0"][0, 0] = float("inf")
        return value

    monkeypatch.setattr(ForecastTask, "train_step", train_step)
    return calls


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_non_finite_step_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch, where):
    cfg = TrainConfig(task="sunspots", epochs=3, hidden_size=8)
    calls = poison_step(monkeypatch, epoch=2, step=3, where=where)
    calls["per_epoch"] = ForecastTask("sunspots", cfg.resolved().window).steps_per_epoch(cfg.resolved())
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3: the loss is .*checkpoint .* is unchanged"):
        train(cfg, tmp_path / "r", progress=False, echo=lambda *_: None)
    saved = load_checkpoint(tmp_path / "r" / "checkpoint.npz")
    assert saved.epoch == 1
    assert all(np.all(np.isfinite(v)) for v in saved.model.values())


def test_non_finite_step_can_be_skipped(tmp_path, monkeypatch):
    cfg = TrainConfig(task="sunspots", epochs=2, hidden_size=8, on_nonfinite="skip")
    calls = poison_step(monkeypatch, epoch=1, step=2)
    calls["per_epoch"] = ForecastTask("sunspots", cfg.resolved().window).steps_per_epoch(cfg.resolved())
    result = train(cfg, tmp_path / "r", progress=False, echo=lambda *_: None)
    assert [h["skipped_steps"] for h in result.history] == [1, 0]
    assert all(np.all(np.isfinite(v)) for v in result.model.state_dict().values())


def test_a_diverging_run_is_stopped_by_the_loop_not_by_input_checks(tmp_path):
    """Huge steps make the model's own arrays non-finite: that is TrainingDiverged, naming
    the step, not a ValueError about a layer's input."""
    cfg = TrainConfig(task="seed", optimizer="sgd", lr=1e37, clip=None, momentum=0.0,
                      epochs=2, hidden_size=8)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+: the loss is .* no checkpoint was written yet"):
        with np.errstate(over="ignore", invalid="ignore"):     # the divergence itself
            train(cfg, tmp_path / "r", progress=False, echo=lambda *_: None)


def test_a_run_refuses_data_that_changed_under_it(tmp_path):
    from lstm_xp.job.train import load_run, resume
    text = tmp_path / "t.txt"
    text.write_text("abcabd xyz\n" * 400)
    cfg = TrainConfig(task="chars", text=str(text), epochs=1, hidden_size=4, seq_len=8,
                      batches_per_epoch=2)
    train(cfg, tmp_path / "r", progress=False, echo=lambda *_: None)
    load_run(tmp_path / "r")                                   # unchanged: loads
    text.write_text("zbczbd xyz\n" * 400)                      # same length, other letters
    with pytest.raises(ValueError, match=r"has changed since it was trained \(differs in: chars, text_sha256"):
        load_run(tmp_path / "r")
    with pytest.raises(ValueError, match="has changed since it was trained"):
        resume(tmp_path / "r", epochs=2, progress=False, echo=lambda *_: None)
