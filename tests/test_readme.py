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
