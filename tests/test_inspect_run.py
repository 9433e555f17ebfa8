"""lstm-xp inspect RUN: its three files for every task (series, a CSV series, chars, adding),
the loss gradients it traces against the model's own backward, and its errors."""

import json

import numpy as np
import pytest

from lstm_xp import CrossEntropyLoss, MSELoss
from lstm_xp.job import cli
from lstm_xp.job.models import CharModel, SeriesForecaster

RUNS = {
    "seed": ["--task", "seed", "--epochs", "2", "--hidden-size", "6"],
    "chars": ["--task", "chars", "--epochs", "1", "--hidden-size", "8", "--seq-len", "16",
              "--batches-per-epoch", "5", "--max-chars", "5000"],
    "adding": ["--task", "adding", "--epochs", "1", "--hidden-size", "6", "--seq-len", "20",
               "--batches-per-epoch", "5", "--num-layers", "2"],
    "series": ["--series", "sales.csv", "--epochs", "2", "--hidden-size", "6", "--window",
               "6"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    months = [f"{2020 + k // 12}-{k % 12 + 1:02d}" for k in range(60)]
    (root / "sales.csv").write_text("month,sales\n" + "".join(
        f"{m},{100 + 10 * np.sin(k / 2):.3f}\n" for k, m in enumerate(months)))
    made = {}
    import os
    here = os.getcwd()
    os.chdir(root)
    try:
        for name, args in RUNS.items():
            assert cli.train_main([*args, "--out", name, "--no-progress"]) == 0
            made[name] = root / name
    finally:
        os.chdir(here)
    return made


@pytest.mark.parametrize("name", sorted(RUNS))
def test_inspect_writes_its_three_files_for_every_task(runs, name, capsys):
    assert cli.main(["inspect", str(runs[name]), "--sequences", "20"]) == 0
    assert "inspect.json, gates.png, gradient_flow.png" in capsys.readouterr().out
    folder = runs[name] / "inspect"
    for figure in ("gates.png", "gradient_flow.png"):
        assert (folder / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((folder / "inspect.json").read_text())
    steps = info["steps"]
    for key in ("gradient_norm_by_lag", "gradient_norm_by_lag_at_init"):
        curves = info[key]
        assert len(curves["h"]) == len(curves["c"]) == steps
        assert all(v >= 0 and np.isfinite(v) for v in curves["h"] + curves["c"])
        assert curves["h"][0] > 0                           # the loss reaches the last step
    assert info["layer"] == (1 if name == "adding" else 0)
    forget = info["gates"]["forget"]
    assert 0 < forget["mean"] < 1 and 0 <= forget["saturated_share"] <= 1


def test_series_loss_gradient_is_the_models_own_backward(rng):
    """lstm_gradients (what inspect traces) gives the LSTM the gradients MSELoss and the
    model's backward give it."""
    model = SeriesForecaster(5, 2, dtype="float64", seed=0, input_size=2)
    x, target = rng.standard_normal((4, 7, 2)), rng.standard_normal(4)
    dy, dstate = model.lstm_gradients(x, target)
    model.lstm.forward(x)
    model.lstm.backward(dy, dstate)
    ours = {k: v.copy() for k, v in model.lstm.grads.items()}
    model.zero_grad()
    loss = MSELoss()
    loss.forward(model.forward(x), target[:, None])
    model.backward(loss.backward())
    for k, v in model.lstm.grads.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-12, atol=1e-15, err_msg=k)


def test_chars_loss_gradient_is_the_last_steps_cross_entropy(rng):
    model = CharModel(6, 5, dtype="float64", seed=0)
    ids = rng.integers(0, 6, (3, 8))
    x = np.eye(6)[ids]
    target = rng.integers(0, 6, 3)
    dy, dstate = model.lstm_gradients(x, target)
    assert dstate is None and np.all(dy[:, :-1] == 0)
    model.lstm.forward(x)
    model.lstm.backward(dy)
    ours = {k: v.copy() for k, v in model.lstm.grads.items()}
    model.zero_grad()
    y, _ = model.lstm.forward(x)
    loss = CrossEntropyLoss()
    loss.forward(model.head.forward(y[:, -1, :]), target)
    d_last = model.head.backward(loss.backward())
    dy_full = np.zeros_like(dy)
    dy_full[:, -1, :] = d_last
    model.lstm.backward(dy_full)
    for k, v in model.lstm.grads.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-12, atol=1e-15, err_msg=k)


def test_inspect_names_a_missing_run(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert cli.main(["inspect", str(tmp_path), "--sequences", "0"]) == 2
    assert "--sequences must be a positive integer, got 0" in capsys.readouterr().err


def test_inspect_without_matplotlib_writes_the_numbers(runs, monkeypatch, capsys):
    from lstm_xp.job import plots
    monkeypatch.setattr(plots, "available", lambda: False)
    folder = runs["seed"] / "inspect"
    for name in ("gates.png", "gradient_flow.png", "inspect.json"):
        (folder / name).unlink(missing_ok=True)
    assert cli.main(["inspect", str(runs["seed"]), "--sequences", "5"]) == 0
    out = capsys.readouterr().out
    assert "matplotlib is not installed, so inspect writes inspect.json only" in out
    assert (folder / "inspect.json").is_file() and not (folder / "gates.png").exists()


def test_inspect_says_what_it_used_and_keeps_last_apart(runs, capsys):
    """More sequences than the test data hold: all are used, and it says so; the summary
    line gives the first/last gradient ratio; --which last writes inspect-last/."""
    assert cli.main(["inspect", str(runs["adding"]), "--sequences", "5000"]) == 0
    out = capsys.readouterr().out
    assert "note: the test data hold 1000 sequences, fewer than the 5000 asked" in out
    assert "||dL/dh_0|| / ||dL/dh_19|| (first step / last, mean over 1000 test sequences)" in out
    info = json.loads((runs["adding"] / "inspect" / "inspect.json").read_text())
    assert info["sequences"] == 1000 and info["parameters"] == "best"
    assert cli.main(["inspect", str(runs["adding"]), "--which", "last", "--sequences", "5"]) == 0
    last = json.loads((runs["adding"] / "inspect-last" / "inspect.json").read_text())
    assert last["parameters"] == "last" and last["sequences"] == 5
    assert json.loads((runs["adding"] / "inspect" / "inspect.json").read_text()) == info
