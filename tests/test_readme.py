"""Every ```python block of README.md runs as pasted, alone, into a fresh interpreter (its own
imports and data), from an empty folder; the research example also learns, and the deploy
example's ONNX graph gives the layer's own outputs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)

# Runs one block in a namespace of its own, then prints as JSON the checks asked for (Python
# expressions evaluated in that namespace after the block).
HARNESS = """
import json, sys
block, checks = sys.argv[1], json.loads(sys.argv[2])
ns = {"__name__": "__main__"}
exec(compile(block, "README.md", "exec"), ns)
print("CHECKS " + json.dumps({c: bool(eval(c, ns)) for c in checks}))
"""

# per example, named by a line only it has: what must hold after it ran
CHECKS = {
    # the research example learned: its loss is a small fraction of the target's variance
    "final loss (eval mode)": ["float(value) < 0.1 * float(np.var(target))"],
    # the exported graph computes what the layer computes
    "export(lstm, ": ["np.allclose(y, lstm.forward(x, lengths=lengths, train=False)[0], "
                      "rtol=1e-5, atol=1e-6)"],
    # the stream was read to its end, in chunks
    "carry.keep(state)": ["carry.state[0].shape == (1, 4, 32)", "opt.steps == 100"],
}


def checks_of(block: str) -> list:
    return [c for marker, cs in CHECKS.items() if marker in block for c in cs]


def test_every_example_is_found():
    assert len(BLOCKS) >= 3
    for marker in CHECKS:
        assert sum(marker in b for b in BLOCKS) == 1, marker


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.splitlines()[-1].strip()[:40])
def test_block_runs_alone_in_a_fresh_interpreter(block, tmp_path):
    if "onnxruntime" in block:
        pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra")
    checks = checks_of(block)
    done = subprocess.run([sys.executable, "-c", HARNESS, block, json.dumps(checks)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README block failed:\n{block}\n{done.stderr}"
    verdicts = json.loads(done.stdout.rsplit("CHECKS ", 1)[1])
    assert verdicts == {c: True for c in checks}
    if "final loss" in block:
        assert "final loss" in done.stdout
        assert len([line for line in block.splitlines() if line.strip()]) <= 20
