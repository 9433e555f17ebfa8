"""A clean stop: SIGINT (Ctrl-C) and SIGTERM (a scheduler) end a run without a traceback,
with one line naming the saved epoch and the command that continues the run (exit 130 /
143), the checkpoint that of the last complete epoch; under MPI every rank stops. Also what
the end of a run reports (the tested epoch, metrics.json's history), the resume rules and
progress bars only on terminals.

The runs that get a signal are real processes (tests/test_signals.py writes their program,
CHILD, beside them). To make them deterministic rather than timed, the child holds one
training step -- the first one after its first checkpoint, or its first step of all --
until a signal has reached it, and says so in a file (``holding.<rank>``, its pid inside);
the test waits for that file, then sends the signal. The hold changes no number the run
computes.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstm_xp.job import cli
from lstm_xp.job.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lstm_xp.job.train import RunInterrupted, TrainConfig, resume, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden-size", "4"]               # the seed task: well under a second per epoch
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                              "")]),
       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
WAIT_S = 180                                 # safety nets only: nothing is timed

CHILD = '''
import os, sys, time
from pathlib import Path
from lstm_xp.job.cli import train_main
loop = sys.modules["lstm_xp.job.train"]          # the module (lstm_xp.job.train is train())
from lstm_xp.job.tasks import ForecastTask

hold = os.environ.get("HOLD")                  # "checkpoint", "start" or "" (never)
rank = os.environ.get("PMI_RANK", "0")
holders = os.environ.get("HOLD_RANKS", "0").split(",")
got = []
real_handle = loop._StopSignals._handle

def handle(self, signum, frame):
    got.append(signum)
    real_handle(self, signum, frame)

loop._StopSignals._handle = handle
real_step = ForecastTask.train_step
held = []

def train_step(self, model, x, target):
    saved = Path(os.environ["RUN"], "checkpoint.npz").exists()
    if hold and rank in holders and not held and (hold == "start" or saved):
        held.append(1)
        Path(f"holding.{rank}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    return real_step(self, model, x, target)

ForecastTask.train_step = train_step
sys.exit(train_main(sys.argv[1:]))
'''


def start(tmp_path, args, hold, run="run", mpi_ranks=0, hold_ranks="0"):
    """The child program running ``train_main(args)`` in ``tmp_path``; stdout, stderr in
    files (rank r's in .out.r / .err.r under mpiexec)."""
    program = tmp_path / "child.py"
    program.write_text(CHILD)
    env = {**ENV, "HOLD": hold, "RUN": run, "HOLD_RANKS": hold_ranks}
    command = [sys.executable, str(program), *args]
    if mpi_ranks:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        command = [str(mpiexec), "-n", str(mpi_ranks), "-outfile-pattern", ".out.%r",
                   "-errfile-pattern", ".err.%r", *command]
    with open(tmp_path / ".out", "w") as out, open(tmp_path / ".err", "w") as err:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=err)


def holding(proc, tmp_path, rank=0) -> int:
    """Wait until the child (rank) holds its step; its pid."""
    marker = tmp_path / f"holding.{rank}"
    deadline = time.monotonic() + WAIT_S
    while not (marker.exists() and marker.read_text()):
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before holding: "
                        f"{(tmp_path / '.err').read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run never reached its held step")
        time.sleep(0.02)
    return int(marker.read_text())


def finish(proc, tmp_path):
    try:
        proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not stop after the signal")
    return proc.returncode, (tmp_path / ".out").read_text(), (tmp_path / ".err").read_text()


LINE = re.compile(r"stopped by (SIG\w+) after epoch (\d+) of (\d+) \(saved in (\S+)\); "
                  r"to continue: (.+)")


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_cleanly_and_the_printed_command_continues(sig, status, tmp_path,
                                                                  monkeypatch):
    proc = start(tmp_path, [*TINY, "--epochs", "3", "--out", "run"], "checkpoint")
    os.kill(holding(proc, tmp_path), sig)
    code, out, err = finish(proc, tmp_path)
    assert code == status, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    name, epoch, total, where, command = LINE.fullmatch(err.strip()).groups()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert (name, int(epoch), int(total), where) == (sig.name, ckpt.epoch, 3,
                                                     "run/checkpoint.npz")
    assert ckpt.epoch == 1 and len(ckpt.extra["history"]) == 1      # epoch 2 was dropped
    assert "epoch   1/3" in out and "epoch   2/3" not in out
    assert not list((tmp_path / "run").glob(".*tmp*"))              # no half-written file
    assert command == "lstm-xp train --resume run --epochs 3"
    # the command as printed, through the command line, continues and completes the run
    monkeypatch.chdir(tmp_path)
    words = shlex.split(command)
    assert words[:2] == ["lstm-xp", "train"]
    assert cli.train_main(words[2:]) == 0
    resumed = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert resumed.epoch == 3
    # the dropped half epoch left no trace: the parameters of an uninterrupted run (CPU)
    assert cli.train_main([*TINY, "--epochs", "3", "--out", "straight"]) == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    for key in straight.model:
        np.testing.assert_array_equal(resumed.model[key], straight.model[key], err_msg=key)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_the_first_save_gives_the_folder_back(sig, status, tmp_path):
    proc = start(tmp_path, [*TINY, "--epochs", "3", "--out", "run"], "start")
    os.kill(holding(proc, tmp_path), sig)
    code, out, err = finish(proc, tmp_path)
    assert code == status, err
    assert err == (f"stopped by {sig.name} before the first epoch was saved: nothing to "
                   f"resume (the run folder run was removed; starting the same run again "
                   f"starts it afresh)\n")
    assert not (tmp_path / "run").exists()
    # a folder that was there before the run keeps itself, less the run's config.json
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    (tmp_path / "holding.0").unlink()
    proc = start(tmp_path, [*TINY, "--epochs", "3", "--out", "mine"], "start", run="mine")
    os.kill(holding(proc, tmp_path), sig)
    code, out, err = finish(proc, tmp_path)
    assert code == status and err == (
        f"stopped by {sig.name} before the first epoch was saved: nothing to resume "
        f"(mine/config.json was removed; starting the same run again starts it afresh)\n")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_resumed_run_stopped_before_its_next_save_names_the_saved_epoch(tmp_path):
    assert subprocess.run([sys.executable, "-c", "import sys; from lstm_xp.job.cli import "
                           "train_main; sys.exit(train_main(sys.argv[1:]))", *TINY,
                           "--epochs", "1", "--out", "run", "--no-progress"], cwd=tmp_path,
                          env=ENV, capture_output=True).returncode == 0
    proc = start(tmp_path, ["--resume", "run/checkpoint.npz", "--epochs", "4"], "start")
    os.kill(holding(proc, tmp_path), signal.SIGINT)
    code, out, err = finish(proc, tmp_path)
    assert code == 130
    assert err == ("stopped by SIGINT after epoch 1 of 4 (saved in run/checkpoint.npz); to "
                   "continue: lstm-xp train --resume run --epochs 4\n")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz").epoch == 1


# ------------------------------------------------------------------------------ in-process
def _signal_at_step(monkeypatch, sig, at_step):
    """The seed task's ``at_step``-th training step sends ``sig`` to this process."""
    from lstm_xp.job.tasks import ForecastTask
    real, calls = ForecastTask.train_step, []

    def step(self, model, x, target):
        calls.append(1)
        if len(calls) == at_step:
            os.kill(os.getpid(), sig)
        return real(self, model, x, target)
    monkeypatch.setattr(ForecastTask, "train_step", step)


def _train_catching(*args, **kw):
    """train(...) -> its RunInterrupted (never let a KeyboardInterrupt reach pytest)."""
    try:
        train(*args, **kw)
    except RunInterrupted as stop:
        return stop
    except KeyboardInterrupt as other:          # pragma: no cover - a failure, reported
        pytest.fail(f"a bare KeyboardInterrupt escaped: {other!r}")
    pytest.fail("the run was not interrupted")


def test_library_raises_run_interrupted_and_restores_the_handlers(tmp_path, monkeypatch):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _signal_at_step(monkeypatch, signal.SIGTERM, 20)        # in epoch 2 (17 steps each)
    stop = _train_catching(TrainConfig(epochs=5, hidden_size=4), tmp_path / "r",
                           echo=lambda *_: None)
    assert isinstance(stop, KeyboardInterrupt)              # `except Exception` lets it by
    assert (stop.signal, stop.epoch_saved, stop.epochs, stop.exit_status) == (
        signal.SIGTERM, 1, 5, 143)
    assert stop.run_dir == tmp_path / "r"
    assert str(stop) == (f"stopped by SIGTERM after epoch 1 of 5 (saved in "
                         f"{tmp_path / 'r' / 'checkpoint.npz'}); to continue: "
                         f"resume({str(tmp_path / 'r')!r}, epochs=5)")
    assert {s: signal.getsignal(s) for s in before} == before
    assert load_checkpoint(tmp_path / "r" / "checkpoint.npz").epoch == 1
    monkeypatch.undo()
    result = resume(stop.run_dir, epochs=stop.epochs, echo=lambda *_: None)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_while_the_run_prepares_claims_no_folder(tmp_path, monkeypatch):
    loop = sys.modules["lstm_xp.job.train"]
    real = loop.build_task

    def build_task(cfg):                        # the data loading of a run: SIGINT meanwhile
        os.kill(os.getpid(), signal.SIGINT)
        return real(cfg)
    monkeypatch.setattr(loop, "build_task", build_task)
    stop = _train_catching(TrainConfig(epochs=2, hidden_size=4), tmp_path / "r",
                           echo=lambda *_: None)
    assert (stop.run_dir, stop.epoch_saved, stop.exit_status) == (None, None, 130)
    assert str(stop) == "stopped by SIGINT before the run began: nothing was saved"
    assert not (tmp_path / "r").exists()


def test_a_signal_during_the_save_reports_the_epoch_on_disk(tmp_path, monkeypatch):
    real, saves = np.savez, []

    def savez(file, **arrays):                  # the signal arrives mid-write of epoch 2
        saves.append(1)
        if len(saves) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(file, **arrays)
    monkeypatch.setattr(np, "savez", savez)
    stop = _train_catching(TrainConfig(epochs=5, hidden_size=4), tmp_path / "r",
                           echo=lambda *_: None)
    assert stop.epoch_saved == 2 == load_checkpoint(tmp_path / "r" / "checkpoint.npz").epoch
    assert stop.exit_status == 130


def test_a_killing_signal_during_a_save_leaves_a_whole_file(tmp_path):
    """With its default action (the process ends), a SIGTERM that arrives mid-write waits
    for the save to finish: the new checkpoint is whole and no temporary is left."""
    code = f'''
import os, signal, numpy as np
from lstm_xp.job.checkpoint import Checkpoint, save_checkpoint
real = np.savez
def savez(file, **arrays):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(file, **arrays)
np.savez = savez
save_checkpoint("ck.npz", Checkpoint(epoch=2, config={{}}, rng={{}}, model={{"w": np.ones(3)}},
                optim={{}}))
print("the process outlived its SIGTERM")
'''
    save_checkpoint(tmp_path / "ck.npz", Checkpoint(epoch=1, config={}, rng={},
                                                    model={"w": np.zeros(3)}, optim={}))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGTERM and done.stdout == "", done.stderr
    back = load_checkpoint(tmp_path / "ck.npz")
    assert back.epoch == 2 and back.model["w"].tolist() == [1, 1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


# ------------------------------------------------------------------------------------ MPI
def _mpi_ready():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return (Path(sys.executable).parent / "mpiexec").exists()


needs_mpi = pytest.mark.skipif(not _mpi_ready(), reason="mpi4py and mpiexec (the test extra)")


@needs_mpi
@pytest.mark.parametrize("target", ["mpiexec", "rank 1"])
def test_sigterm_under_mpi_stops_every_rank(target, tmp_path):
    """SIGTERM to mpiexec (which passes it to every rank) or to one rank alone: every rank
    stops at the same step (they agree on it before each step), rank 0 says so, 143."""
    holders = "0,1" if target == "mpiexec" else "1"
    proc = start(tmp_path, ["--distributed", "--no-progress", *TINY, "--epochs", "3",
                            "--out", "run"], "checkpoint", mpi_ranks=2, hold_ranks=holders)
    pids = [holding(proc, tmp_path, rank) for rank in map(int, holders.split(","))]
    os.kill(proc.pid if target == "mpiexec" else pids[-1], signal.SIGTERM)
    code, _, _ = finish(proc, tmp_path)
    err = [(tmp_path / f".err.{r}").read_text() if (tmp_path / f".err.{r}").exists() else ""
           for r in (0, 1)]
    assert code == 143, err
    assert err == ["stopped by SIGTERM after epoch 1 of 3 (saved in run/checkpoint.npz); to "
                   "continue: mpiexec -n 2 lstm-xp train --distributed --resume run "
                   "--epochs 3\n", ""]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz").epoch == 1


# ----------------------------------------------------- what a run reports, resume, progress
@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.train_main([*TINY, "--epochs", "2", "--out", "run", "--no-progress"]) == 0
    return tmp_path / "run"


@pytest.mark.parametrize("argv, named", [
    (["--lr", "0.1"], "--lr"),
    (["--epochs", "5", "--seed", "3", "--task", "sunspots"], "--seed and --task"),
    (["--epochs", "5", "--out", "elsewhere"], "--out"),
    (["--peephole", "--epochs", "5", "--device", "cpu"], "--peephole"),
])
def test_resume_refuses_every_option_but_epochs_and_device(run, capsys, argv, named):
    before = (run / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert cli.train_main(["--resume", "run", *argv]) == 2
    assert capsys.readouterr().err == (
        f"error: {named} cannot change when resuming a run (the run's saved options apply); "
        f"only --epochs and --device may be given with --resume\n")
    assert (run / "checkpoint.npz").read_bytes() == before
    assert not (run.parent / "elsewhere").exists()


def test_resume_takes_epochs_device_and_no_progress(run, capsys):
    assert cli.train_main(["--resume", "run", "--epochs", "3", "--device", "cpu",
                           "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_metrics_hold_the_history_and_the_tested_epoch(tmp_path, monkeypatch, capsys):
    from lstm_xp.job.tasks import ForecastTask
    real, vals = ForecastTask.evaluate, iter([3.0, 1.0, 2.0])

    def evaluate(self, model, split):
        return next(vals) if split == "val" else real(self, model, split)
    monkeypatch.setattr(ForecastTask, "evaluate", evaluate)
    monkeypatch.chdir(tmp_path)
    assert cli.train_main([*TINY, "--epochs", "3", "--out", "run"]) == 0
    out = capsys.readouterr().out
    lstm_line = next(line for line in out.splitlines() if line.startswith("  lstm "))
    assert lstm_line.endswith("<- parameters of the best validation epoch, 2 of 3")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["tested_epoch"], metrics["tested_epoch_chosen_by"]) == (
        2, "best validation epoch")
    history = load_checkpoint(tmp_path / "run" / "checkpoint.npz").extra["history"]
    assert metrics["history"] == history
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["val_rmse"] for h in history] == [3.0, 1.0, 2.0]
    assert set(history[0]) == {"epoch", "train_loss", "val_rmse", "skipped_steps", "seconds"}
    assert history[0]["seconds"] <= history[1]["seconds"] <= history[2]["seconds"]


def test_no_finite_validation_score_tests_the_last_epoch(tmp_path, monkeypatch, capsys):
    from lstm_xp.job.tasks import ForecastTask
    real = ForecastTask.evaluate
    monkeypatch.setattr(ForecastTask, "evaluate", lambda self, model, split: (
        float("nan") if split == "val" else real(self, model, split)))
    result = train(TrainConfig(epochs=2, hidden_size=4), tmp_path / "r", echo=print)
    assert (result.metrics["tested_epoch"], result.metrics["tested_epoch_chosen_by"]) == (
        2, "last epoch")
    assert ("<- parameters of the last epoch, 2 of 2 (no epoch had a finite validation "
            "score)") in capsys.readouterr().out


def test_the_tested_epoch_survives_a_resume(tmp_path, monkeypatch):
    from lstm_xp.job.tasks import ForecastTask
    real, vals = ForecastTask.evaluate, iter([2.0, 1.0, 5.0, 4.0])

    def evaluate(self, model, split):
        return next(vals) if split == "val" else real(self, model, split)
    monkeypatch.setattr(ForecastTask, "evaluate", evaluate)
    train(TrainConfig(epochs=2, hidden_size=4), tmp_path / "r", echo=lambda *_: None)
    result = resume(tmp_path / "r", epochs=4, echo=lambda *_: None)
    assert result.metrics["tested_epoch"] == 2 and result.metrics["best_epoch"] == 2
    assert [h["epoch"] for h in result.metrics["history"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("tty, argv, bars", [
    (False, [], False),                     # a log file: one plain line per epoch, no bars
    (True, [], True),                       # a terminal: bars
    (True, ["--no-progress"], False),
])
def test_progress_bars_only_on_a_terminal(tty, argv, bars, tmp_path, monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.chdir(tmp_path)
    if tty:
        monkeypatch.setattr(sys.modules["lstm_xp.job.train"], "_on_terminals", lambda: True)
    assert cli.train_main([*TINY, "--epochs", "2", "--out", "run", *argv]) == 0
    captured = capsys.readouterr()
    assert ("\r" in captured.out + captured.err) == bars
    lines = captured.out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]


def test_a_log_file_gets_no_carriage_returns(tmp_path):
    """The command line with stdout and stderr redirected to a file, as a scheduler runs it."""
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *TINY,
                               "--epochs", "2", "--out", "run"], cwd=tmp_path, env=ENV,
                              stdout=f, stderr=subprocess.STDOUT)
    assert done.returncode == 0
    text = log.read_text()
    assert "\r" not in text and text.count("epoch   1/2") == 1
