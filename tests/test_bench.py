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
    monkeypatch.setattr(bench, "WARM_SECONDS", 0.01)
    monkeypatch.setattr(bench, "SETTLE_SECONDS", 0.0)
    assert bench.main(["--configs", "tiny", "--rounds", "2", "--markdown", "--no-torch"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| tiny |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 12
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


def test_rounds_alternate_sides_and_report_spread(bench, monkeypatch):
    monkeypatch.setattr(bench, "WARM_SECONDS", 0.0)
    order = []
    clock = {"ours": 2.0, "theirs": 4.0}

    def timer(fn):
        return fn()

    def side(name):
        def fn():
            order.append(name)
            return clock[name]
        return fn

    class Quiet:
        def sample(self):
            return (1.0, 1.0)

        def quiet(self, probe):
            return True

    result = bench.measure_pair(timer, Quiet(), side("ours"), side("theirs"), rounds=4)
    firsts = [order[i] for i in range(0, len(order), len(order) // 4)]
    assert firsts == ["ours", "theirs", "ours", "theirs"]        # who goes first alternates
    assert result["ours"] == 2.0 and result["theirs"] == 4.0 and result["ratios"] == [0.5] * 4
    assert bench.ratio_cell(result) == "0.50 (0.50-0.50)"
    assert bench.ratio_cell({"ratios": [0.9, 1.1, 1.0]}) == "1.00 (0.90-1.10) ?"   # crosses 1
    assert bench.ratio_cell({"ratios": [0.8, 0.9]}) == "0.85 (0.80-0.90) ?"        # < 3 rounds


def test_noisy_rounds_are_discarded(bench, monkeypatch):
    monkeypatch.setattr(bench, "WARM_SECONDS", 0.0)
    probe = bench.HostProbe()
    probe.best = (1.0, 1.0)                       # the quiet baseline
    samples = iter([(1.0, 1.0)] * 2 + [(1.0, 1.6), (1.0, 1.0)] + [(1.2, 1.4)] * 4)
    monkeypatch.setattr(probe, "sample", lambda: next(samples))
    result = bench.measure_pair(lambda fn: fn(), probe, lambda: 1.0, lambda: 2.0, rounds=4)
    assert result["discarded"] == 1 and len(result["ratios"]) == 3   # 1.6x: noisy; 1.4x: kept
