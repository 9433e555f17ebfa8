"""scripts/bench.py runs end to end on the CPU and refuses options that do not apply."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_script", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_prints_a_row_per_config(bench, capsys, monkeypatch):
    monkeypatch.setitem(bench.CONFIGS, "tiny", dict(T=5, B=2, I=3, H=4, L=2, bi=True))
    assert bench.main(["--configs", "tiny", "--repeats", "1", "--markdown", "--no-torch"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| tiny |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 11
    assert float(cells[1]) > 0 and cells[2] == "-" and cells[3] == "-"   # no torch: no ratio


def test_activation_bytes_and_flops_by_hand(bench):
    cfg = dict(T=5, B=2, I=3, H=4, L=2, bi=True)
    # per layer-direction T*B*6H (gates 4H, h, c), plus each layer's input once: I, then 2H
    assert bench.activation_bytes(cfg, 4) == (4 * 5 * 2 * 6 * 4 + 5 * 2 * 3 + 5 * 2 * 8) * 4
    # 24 T B H (I_k + H) per layer-direction
    assert bench.train_flops(cfg) == 24 * 5 * 2 * 4 * (2 * (3 + 4) + 2 * (8 + 4))


def test_bench_refuses_tf32_off_the_gpu(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--tf32"])
    assert "--tf32 applies to --device gpu" in capsys.readouterr().err


def test_bench_refuses_unknown_configs(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--configs", "nope"])
    assert "unknown configs" in capsys.readouterr().err
