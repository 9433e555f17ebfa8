"""The GPU path's launch and sync budget, counted on the emulated device.

Run with ``pytest --emulated-gpu -m gpu`` (CI does); elsewhere these skip, since only the
emulated device counts launches. What they pin down, exactly:

- a time step is one recurrent GEMM and one fused cell kernel, forward and backward, with
  or without dy, padded or not, in either direction (with a projection: one GEMM more each
  way, and two selects more per padded step);
- nothing inside any time loop waits for the device or copies to the host;
- an optimizer step, the gradient norm, clipping and zero_grad cost the same launches for
  one parameter array or fifty;
- the cross-entropy target check of host targets and character sampling make no sync
  (sampling reads its characters back once, at the end).

These are counts of what the backend asks the device to do, which the emulator sees
exactly; they say nothing about how long a launch takes on a real GPU.
"""

import numpy as np
import pytest

from lstm_xp import LSTM, Adam, SGD, CrossEntropyLoss, Linear, clip_grad_norm, finite_checks
from lstm_xp.bptt import direction_backward, direction_forward

pytestmark = pytest.mark.gpu

emulator = pytest.importorskip("cupy._emulator",
                               reason="launch counts need the emulated device: "
                                      "pytest --emulated-gpu -m gpu")


def _direction(gpu, rng, T, B=3, I=4, H=5, P=None, padded=False, dtype="float32"):
    P = P or H
    arr = lambda *shape: gpu.asarray(rng.standard_normal(shape).astype(dtype))  # noqa: E731
    weights = dict(w_ih=arr(4 * H, I), w_hh=arr(4 * H, P), b_ih=arr(4 * H), b_hh=arr(4 * H),
                   w_hr=arr(P, H) if P != H else None)
    hold = None
    if padded:
        lengths = np.array([T, max(1, T // 2), 1][:B])
        hold = gpu.asarray(np.arange(T)[:, None, None] >= lengths[None, :, None])
    return arr(T, B, I), weights, arr(B, P), arr(B, H), hold, arr(T, B, P)


def _run(gpu, rng, T, reverse, padded, with_dy, P=None):
    """The events of one direction's forward and of its backward, separately."""
    x, w, h0, c0, hold, dy = _direction(gpu, rng, T, P=P, padded=padded)
    if hold is not None:
        dy = gpu.xp.where(hold, 0.0, dy)
    grads = {k: gpu.zeros(tuple(v.shape), v.dtype) for k, v in w.items() if v is not None}
    with emulator.record() as fwd:
        tape = direction_forward(gpu, x, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"], h0, c0,
                                 reverse=reverse, hold=hold, w_hr=w["w_hr"])
    dx = gpu.empty(tuple(x.shape), x.dtype)
    with emulator.record() as bwd:
        direction_backward(gpu, tape, w["w_ih"], w["w_hh"], dy if with_dy else None, h0, c0,
                           grads, dx, accumulate_dx=False, w_hr=w["w_hr"])
    return fwd.events, bwd.events


def _per_step(gpu, rng, **kw):
    """(forward events per step, backward events per step, the two logs at T = 8): the
    difference between T = 8 and T = 4, which must be the same events four times over
    (after a first call has filled the backend's caches)."""
    _run(gpu, rng, 4, **kw)
    short, long = _run(gpu, rng, 4, **kw), _run(gpu, rng, 8, **kw)
    steps = []
    for a, b in zip(short, long):
        extra = len(b) - len(a)
        assert extra % 4 == 0
        steps.append(extra // 4)
    return steps, long


@pytest.mark.parametrize("with_dy", [True, False], ids=["dy", "no-dy"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_step_is_one_gemm_and_one_kernel_each_way(gpu, rng, reverse, padded, with_dy):
    (fwd_step, bwd_step), (fwd, bwd) = _per_step(gpu, rng, reverse=reverse, padded=padded,
                                                 with_dy=with_dy)
    assert (fwd_step, bwd_step) == (2, 2)
    suffix = "_padded" if padded else ""
    cell = emulator.Event("kernel", f"lstm_cell_forward{suffix}<float>")
    back = emulator.Event("kernel", f"lstm_cell_backward_step{suffix}<float>")
    gemm = emulator.Event("gemm", "sgemm")
    loop = [gemm, cell] * 8
    starts = [i for i in range(len(fwd)) if fwd[i:i + 16] == loop]
    assert starts, fwd
    # the backward: the block's factors (one launch: the block covers all steps), then
    # cell and GEMM per step
    factors = emulator.Event("kernel", f"lstm_backward_factors{suffix}<float>")
    i = bwd.index(factors)
    assert bwd[i + 1:i + 17] == [back, gemm] * 8, bwd
    for events in (fwd, bwd):
        kinds = {e.kind for e in events}
        assert not kinds & {"sync", "to_host", "to_device"}, events


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_a_projected_step_adds_one_gemm_each_way(gpu, rng, padded):
    (fwd_step, bwd_step), (fwd, bwd) = _per_step(gpu, rng, reverse=False, padded=padded,
                                                 with_dy=True, P=2)
    assert fwd_step == 3 + (2 if padded else 0)      # GEMM, cell, projection GEMM (+2 selects)
    assert bwd_step == 3 + (1 if padded else 0)      # GEMM, cell, GEMM (+1 select)
    for events in (fwd, bwd):
        assert not {e.kind for e in events} & {"sync", "to_host", "to_device"}


def _model(gpu, layers):
    lstm = LSTM(4, 6, num_layers=layers, bidirectional=True, device="gpu", seed=0)
    head = Linear(12, 3, device="gpu", seed=1)
    return lstm, head


@pytest.mark.parametrize("make", [lambda m: Adam(m, lr=1e-3, weight_decay=0.1),
                                  lambda m: SGD(m, lr=0.1, momentum=0.9)], ids=["adam", "sgd"])
def test_optimizer_and_clipping_cost_the_same_launches_for_any_number_of_arrays(gpu, rng,
                                                                                  make):
    logs = []
    for layers in (1, 4):                   # 6 and 18 parameter arrays
        lstm, head = _model(gpu, layers)
        opt = make([lstm, head])
        for layer in (lstm, head):
            for g in layer.grads.values():
                g[...] = 1.0
        opt.step()                          # first step allocates the moments
        with emulator.record() as log:
            clip_grad_norm([lstm, head], 0.5)
            opt.step()
            opt.zero_grad()
        logs.append(log.events)
    assert logs[0] == logs[1]
    assert not {e.kind for e in logs[0]} & {"sync", "to_host", "to_device"}
    assert sum(e.kind == "kernel" for e in logs[0]) == 1        # the fused update


def test_a_training_forward_and_backward_sync_only_in_the_finite_checks(gpu, rng):
    lstm = LSTM(4, 6, num_layers=2, bidirectional=True, device="gpu", seed=0)
    x = gpu.asarray(rng.standard_normal((7, 3, 4)).astype("float32"))
    dy = gpu.asarray(rng.standard_normal((7, 3, 12)).astype("float32"))
    with emulator.record() as checked:
        lstm.forward(x)
        lstm.backward(dy)
    assert checked.count("sync") == 2                # one finite-check verdict per call
    with finite_checks(False), emulator.record() as unchecked:
        lstm.forward(x)
        lstm.backward(dy)
    assert unchecked.count("sync") == 0 and unchecked.count("to_host") == 0


def test_cross_entropy_checks_a_host_target_without_a_sync(gpu, rng):
    logits = gpu.asarray(rng.standard_normal((4, 5, 7)).astype("float32"))
    target = rng.integers(0, 7, size=(4, 5))
    loss = CrossEntropyLoss()
    with emulator.record() as log:
        loss.forward(logits, target)
        loss.backward()
    assert log.count("sync") == 0 and log.count("to_host") == 0
    assert log.count("to_device") == 1
    with pytest.raises(ValueError, match=r"class indices in \[0, 7\)"):
        loss.forward(logits, np.full((4, 5), 7))


def test_sampling_reads_the_characters_back_once(gpu):
    from lstm_xp.job.data import Vocabulary
    from lstm_xp.job.models import CharModel
    from lstm_xp.job.tasks import CharTask
    task = CharTask.__new__(CharTask)
    task.vocab = Vocabulary("abcdef")
    model = CharModel(6, hidden_size=8, device="gpu", seed=0)
    with emulator.record() as log:
        text = task.sample(model, "ab", 40, 0.8, np.random.default_rng(0))
    assert len(text) == 42
    assert log.count("sync") == 1 and log.count("to_host") == 1
    assert log.count("to_device") == 2          # the prime's one-hot and one chunk of uniforms


def test_a_step_costs_the_host_a_handful_of_python_calls():
    """scripts/step_overhead.py counts the Python function calls per step of a direction's
    loops with kernel and BLAS work skipped: the lean loops make the launch and the GEMM and
    little else (242 calls per forward step went through views and cupy.cublas.gemm)."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CUPY_EMULATOR_SKIP_WORK="1",
               PYTHONPATH=os.pathsep.join([str(root / "tests" / "emulated_gpu"), str(root)]))
    done = subprocess.run([sys.executable, str(root / "scripts" / "step_overhead.py"),
                           "--steps", "20", "--repeats", "2"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\| (plain|padded) \| \S+ \| (\d+) \| \S+ \| (\d+) \|$", done.stdout,
                      re.M)
    assert [r[0] for r in rows] == ["plain", "padded"]
    for _, forward_calls, backward_calls in rows:
        assert int(forward_calls) <= 8 and int(backward_calls) <= 8
