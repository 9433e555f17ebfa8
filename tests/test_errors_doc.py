"""docs/ERRORS.md is executable: each row's call raises exactly the error and message shown."""

import re
from pathlib import Path

import pytest

import backends

DOC = Path(__file__).resolve().parents[1] / "docs" / "ERRORS.md"


def doc_parts():
    text = DOC.read_text()
    setup = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    rows = []
    for line in text.splitlines():
        m = re.fullmatch(r"\| `(.+)` \| (\w+) \| (.*) \|", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3).replace("\\|", "|")))
    return setup, rows


SETUP, ROWS = doc_parts()


def test_the_table_covers_every_entry_point():
    calls = " ".join(call for call, _, _ in ROWS)
    for entry in ("LSTM(", ".forward(", ".backward(", "load_params", "lengths=", "Linear(",
                  "MSELoss", "CrossEntropyLoss", "Adam(", "clip_grad_norm", "load_checkpoint",
                  "TrainConfig", "get_backend", "reset(", "xp_strict"):
        assert entry in calls, entry
    assert len(ROWS) >= 40


@pytest.mark.parametrize("call, error, message", ROWS, ids=[r[0][:60] for r in ROWS])
def test_documented_error(call, error, message, tmp_path, monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.chdir(tmp_path)
    # the doc describes a plain install: hide the test-only "strict" device name
    monkeypatch.delitem(backends._FACTORIES, "strict", raising=False)
    ns = {}
    exec(SETUP, ns)
    with pytest.raises(Exception) as caught:
        exec(call, ns)
    assert type(caught.value).__name__ == error
    assert str(caught.value) == message
