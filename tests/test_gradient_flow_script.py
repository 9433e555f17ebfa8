"""scripts/gradient_flow.py (the README's RNN-against-LSTM study) runs end to end at a toy
size and writes its table, figure and per-run numbers."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_study_script_writes_table_figure_and_runs(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gradient_flow.py"),
                           "--out", str(tmp_path), "--lengths", "6", "--seeds", "0,1",
                           "--steps", "20", "--eval-every", "10", "--hidden", "4",
                           "--figure-length", "6"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert sorted((r["model"], r["seed"]) for r in runs) == [("lstm", 0), ("lstm", 1),
                                                             ("rnn", 0), ("rnn", 1)]
    for r in runs:
        assert len(r["grad_init"]["h"]) == len(r["grad_trained"]["h"]) == 6
        assert ("c" in r["grad_init"]) == (r["model"] == "lstm")
        assert r["ratio_init"] > 0                 # float64 tracing: no underflow to zero
    table = (tmp_path / "table.md").read_text()
    assert "| RNN | 6 |" in table and "| LSTM | 6 |" in table
    assert (tmp_path / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
    merged = subprocess.run([sys.executable, str(ROOT / "scripts" / "gradient_flow.py"),
                             "--out", str(tmp_path / "merged"), "--merge", str(tmp_path),
                             "--figure-length", "6"], capture_output=True, text=True,
                            timeout=120)
    assert merged.returncode == 0, merged.stderr
    assert (tmp_path / "merged" / "table.md").read_text() == table
