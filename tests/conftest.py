import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
from backends import BackendUnavailableError


def _make_strict():
    from strict_backend import StrictBackend
    return StrictBackend()


backends.register_backend("strict", _make_strict)

EMULATED_GPU = Path(__file__).resolve().parent / "emulated_gpu"


def pytest_addoption(parser):
    parser.addoption("--emulated-gpu", action="store_true",
                     help="run on the emulated CUDA device of tests/emulated_gpu (CuPy's API over "
                          "NumPy, the real .cu files compiled as C++); use with -m gpu")
    parser.addoption("--per-test-timeout", type=float, default=0, metavar="SECONDS",
                     help="fail a test that runs longer (SIGALRM: a test stuck inside one C "
                          "call fails when the call returns); 0, the default: no limit")
    parser.addoption("--emulated-fma", action="store_true",
                     help="with --emulated-gpu: compile kernels with fused multiply-adds wherever "
                          "NVRTC would (as a GPU runs them); default is no contraction")


def pytest_configure(config):
    """--emulated-gpu: put the stand-in cupy first on the path before any test imports it."""
    if config.getoption("--emulated-gpu"):
        if "cupy" in sys.modules:
            raise pytest.UsageError("--emulated-gpu: the real cupy is already imported")
        sys.path.insert(0, str(EMULATED_GPU))
        if config.getoption("--emulated-fma"):
            os.environ["CUPY_EMULATOR_FMA"] = "1"
    elif config.getoption("--emulated-fma"):
        raise pytest.UsageError("--emulated-fma goes with --emulated-gpu")


@pytest.fixture
def torch():
    """PyTorch, the oracle. CI sets LSTM_XP_REQUIRE_TORCH=1 so that it can never be skipped there."""
    try:
        import torch
    except ImportError:
        if os.environ.get("LSTM_XP_REQUIRE_TORCH") == "1":
            pytest.fail("LSTM_XP_REQUIRE_TORCH=1 but torch is not installed")
        pytest.skip("PyTorch is not installed: the oracle tests need the CPU build that CI "
                    "uses, `pip install torch==2.13.0` (see .ci/run)")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def strict():
    """The array-api-strict backend on a non-default device."""
    pytest.importorskip("array_api_strict", reason="array-api-strict is in the test extra")
    return backends.get_backend("strict")


@pytest.fixture
def gpu():
    """The CuPy backend; skips where CuPy or a CUDA device is missing."""
    try:
        return backends.get_backend("gpu")
    except BackendUnavailableError as err:
        pytest.skip(f"no usable GPU: {err}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """--per-test-timeout: a TimeoutError inside a test that runs over the limit."""
    limit = item.config.getoption("--per-test-timeout")
    if not limit or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"{item.nodeid} ran over --per-test-timeout={limit:g} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
