"""Truncated BPTT over long streams: carried state, bounded memory, the --bptt training path."""

import resource
import sys
from dataclasses import replace

import numpy as np
import pytest

from lstm_xp import LSTM
from lstm_xp.job.checkpoint import load_checkpoint
from lstm_xp.stream import CarriedState
from lstm_xp.job.train import TrainConfig, resume, train


def test_chunked_forward_with_carried_state_equals_one_pass(rng):
    lstm = LSTM(3, 5, num_layers=2, dtype="float64", seed=0)
    x = rng.standard_normal((40, 2, 3))
    y_full, (h_full, c_full) = lstm.forward(x, train=False)
    carry, pieces = CarriedState(), []
    for lo in range(0, 40, 7):
        y, state = lstm.forward(x[lo:lo + 7], carry.state, train=False)
        carry.keep(state)
        pieces.append(y)
    np.testing.assert_allclose(np.concatenate(pieces), y_full, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(carry.state[0], h_full, rtol=1e-13, atol=1e-15)


def test_gradients_are_truncated_at_the_chunk_start(rng):
    """A chunk's backward equals a fresh forward/backward from the carried state as constants."""
    lstm = LSTM(2, 4, dtype="float64", seed=1)
    x = rng.standard_normal((12, 3, 2))
    carry = CarriedState()
    _, state = lstm.forward(x[:6], train=False)
    carry.keep(state)
    y, _ = lstm.forward(x[6:], carry.state)
    dy = rng.standard_normal(y.shape)
    lstm.backward(dy)
    chunk_grads = {k: v.copy() for k, v in lstm.grads.items()}
    h0, c0 = (np.array(a) for a in carry.state)
    lstm.forward(x[6:], (h0, c0))
    lstm.zero_grad()
    lstm.backward(dy)
    for name in chunk_grads:
        np.testing.assert_array_equal(chunk_grads[name], lstm.grads[name])


def test_reset_zeroes_only_the_named_streams(rng):
    lstm = LSTM(2, 3, num_layers=2, seed=0)
    carry = CarriedState()
    _, state = lstm.forward(rng.standard_normal((4, 3, 2)).astype(np.float32))
    carry.keep(state)
    state[0][...] = 99.0                       # the kept copy does not follow the original
    assert not np.any(carry.state[0] == 99.0)
    before = carry.state[0].copy()
    carry.reset([1])
    assert not np.any(carry.state[0][:, 1]) and not np.any(carry.state[1][:, 1])
    np.testing.assert_array_equal(carry.state[0][:, [0, 2]], before[:, [0, 2]])
    with pytest.raises(ValueError, match=r"batch indices in \[0, 3\), got 3"):
        carry.reset([3])
    with pytest.raises(ValueError, match=r"got 1.7"):
        carry.reset([1.7])
    carry.reset(2)
    assert not np.any(carry.state[0][:, 2])
    carry.reset()
    assert carry.state is None


def _max_rss_bytes():
    scale = 1 if sys.platform == "darwin" else 1024      # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def test_training_memory_is_bounded_by_the_chunk_not_the_stream(rng):
    """100,000 steps of one stream, trained in chunks of 500: the peak memory of the process
    grows by far less than the activations full BPTT over the stream would keep."""
    steps, chunk, B, H = 100_000, 500, 2, 32
    lstm = LSTM(1, H, dtype="float64", seed=0)
    stream = rng.standard_normal((steps, B, 1))
    full_bptt_bytes = steps * B * 6 * H * 8          # gates (4H) + h + c per step, float64
    carry = CarriedState()
    for n, lo in enumerate(range(0, steps, chunk)):
        y, state = lstm.forward(stream[lo:lo + chunk], carry.state)
        carry.keep(state)
        lstm.backward(np.ones_like(y))
        if n == 4:                                   # warmed up: workspaces allocated
            rss_warm = _max_rss_bytes()
    growth = _max_rss_bytes() - rss_warm
    assert full_bptt_bytes > 300e6
    assert growth < 0.05 * full_bptt_bytes, (growth, full_bptt_bytes)


def test_bptt_training_runs_and_resumes_bitwise(tmp_path):
    cfg = TrainConfig(task="chars", epochs=2, hidden_size=12, batch_size=8, bptt=16,
                      max_chars=12_000, lr=0.01)
    quiet = lambda *_: None                                  # noqa: E731
    full = train(cfg, tmp_path / "full", progress=False, echo=quiet)
    losses = [h["train_loss"] for h in full.history]
    assert losses[1] < losses[0]
    train(replace(cfg, epochs=1), tmp_path / "split", progress=False, echo=quiet)
    resume(tmp_path / "split", epochs=2, progress=False, echo=quiet)
    one = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    two = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    for key in one.model:
        np.testing.assert_array_equal(one.model[key], two.model[key], err_msg=key)


def test_bptt_is_refused_for_series_tasks():
    with pytest.raises(ValueError, match="bptt applies only to the chars task, not to 'seed'"):
        TrainConfig(task="seed", bptt=10).resolved()


@pytest.mark.parametrize("bptt", [None, 8])
def test_only_streaming_carries_state_between_batches(bptt):
    """Random windows are unrelated sequences and start from zeros; streamed chunks continue."""
    from lstm_xp.job.tasks import CharTask
    text = "def f(x):\n    return x + 1\n" * 200
    task = CharTask(text, "test text", seq_len=8, bptt=bptt)
    windows = {} if bptt else dict(seq_len=8, batches_per_epoch=3)
    cfg = TrainConfig(task="chars", hidden_size=4, batch_size=2, bptt=bptt, **windows).resolved()
    model = task.build_model(cfg)
    seen = []
    real_forward = model.forward

    def spy(x, state=None, **kw):
        seen.append(state)
        return real_forward(x, state, **kw)

    model.forward = spy
    for x, target in task.batches(np.random.default_rng(0), cfg):
        task.train_step(model, x, target)
    assert seen[0] is None
    if bptt is None:
        assert all(state is None for state in seen)
    else:
        assert all(state is not None for state in seen[1:])


def test_a_streaming_config_saved_with_unused_window_options_still_loads():
    """Configs written before --bptt excluded --seq-len/--batches-per-epoch hold their unused
    defaults; they load (resume) as the streaming configs they always were."""
    old = {"task": "chars", "bptt": 16, "seq_len": 64, "batches_per_epoch": 100,
           "optimizer": "adam", "momentum": 0.9, "lr_decay": 0.0}
    cfg = TrainConfig.from_dict(old).resolved()
    assert cfg.bptt == 16 and cfg.seq_len is None and cfg.batches_per_epoch is None
    assert cfg.momentum is None and cfg.lr_decay is None
