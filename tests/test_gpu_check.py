"""scripts/gpu_check.py dry-run on the emulated device with a small budget: it ends within
the budget (plus the margin the issue allows), and the report holds every part, each with
its ending, and every line the parts printed before the budget stopped them.

The numbers mean nothing here (the emulated device runs kernels on the CPU); what is
checked is that a lent GPU's one call comes back with whatever finished.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 45


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_XP_REQUIRE")}
    env["PYTHONPATH"] = str(ROOT / "tests" / "emulated_gpu")
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out",
                           str(out), "--budget", str(BUDGET), "--configs", "seed",
                           "--rounds", "1"], cwd=out, env=env, capture_output=True, text=True,
                          timeout=BUDGET + 60)
    return done, time.monotonic() - t0, out


def test_ends_within_the_budget(dry_run):
    done, took, _ = dry_run
    assert done.returncode == 0, done.stderr
    assert took < BUDGET + 30


def test_report_holds_every_part_and_how_it_ended(dry_run):
    done, _, out = dry_run
    report = (out / "gpu-report.md").read_text()
    headings = re.findall(r"^## (.+)$", report, re.M)
    assert headings == ["device", "micro", "tests", "bench float32", "bench float32 --tf32",
                        "bench float64"]
    for section in re.split(r"^## ", report, flags=re.M)[1:]:
        assert re.search(r"^\((exit \d+, \d+ s|stopped after \d+ s: its share of the budget|"
                         r"skipped: .*)\)$", section, re.M), section
    assert "Emulated CUDA device" in report                     # device part finished
    assert "| GEMM (B,H)x(H,4H) B64-H512, cupy.cublas.gemm | 200 |" in report   # micro rows
    assert re.search(r"^\d+ passed", report, re.M) and "failed" not in report
    assert "config | train ms" in report                        # bench's streamed header
    assert done.stdout.startswith("# GPU check")                # stdout echoes the report


def test_full_pytest_log_is_kept_beside_the_report(dry_run):
    _, _, out = dry_run
    log = (out / "gpu-pytest.log").read_text()
    assert "test_training_job_end_to_end_on_gpu" in log       # --durations lists it
    assert re.search(r"\d+ passed", log)
