"""The README's research-code example runs and learns."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_research_example_runs_and_learns(capsys):
    text = README.read_text()
    section = text.split("## From research code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert "final loss" in capsys.readouterr().out
    # the example learned: its loss is a small fraction of the target's variance
    assert float(ns["value"]) < 0.1 * float(np.var(ns["target"]))


def test_deploy_example_runs(tmp_path, monkeypatch):
    import pytest
    pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra")
    from lstm_xp import LSTM
    code = re.search(r"```python\n(.*?)```", README.read_text().split("## Deploy", 1)[1],
                     re.S).group(1)
    monkeypatch.chdir(tmp_path)
    lstm = LSTM(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    ns = {"lstm": lstm, "x": x, "lengths": np.array([5, 3])}
    exec(compile(code, "README.md", "exec"), ns)
    want, _ = lstm.forward(x, lengths=[5, 3], train=False)
    np.testing.assert_allclose(ns["y"], want, rtol=1e-5, atol=1e-6)
