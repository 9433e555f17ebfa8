"""The command line as a user meets it: run folders, resume, failing disks, missing extras,
help text, pipes, and a foreign 'backends' package (docs/ERRORS.md has the bad-option table)."""

import errno
import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from lstm_xp.job import cli
from lstm_xp.job.checkpoint import load_checkpoint
from lstm_xp.job.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "2", "--hidden-size", "4", "--no-progress"]


def script(name, *args, cwd, **kw):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd,
                          capture_output=True, text=True, **kw)


def test_two_runs_started_together_get_two_complete_folders(tmp_path):
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *TINY,
                               "--seed", str(seed)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    seeds = set()
    for folder in folders:
        assert {"config.json", "checkpoint.npz", "metrics.json", "loss_curve.png",
                "forecast.png"} <= {p.name for p in folder.iterdir()}
        config = json.loads((folder / "config.json").read_text())
        assert load_checkpoint(folder / "checkpoint.npz").config == config
        seeds.add(config["seed"])
    assert seeds == {0, 1}             # each folder holds one run's config and checkpoint


def test_the_same_second_gives_distinct_folders(tmp_path, monkeypatch):
    from lstm_xp.job.train import new_run_dir
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-000000")
    names = [new_run_dir("seed", tmp_path).name for _ in range(3)]
    assert names == ["seed-20260101-000000", "seed-20260101-000000-2", "seed-20260101-000000-3"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.train_main([*TINY, "--out", "run"]) == 0
    return tmp_path / "run"


def _fail_on(monkeypatch, owner, name, err, *, after=0):
    """Make ``owner.name`` raise ``err`` from its (after+1)-th call on."""
    real = getattr(owner, name)
    calls = []

    def fake(*a, **kw):
        calls.append(1)
        if len(calls) > after:
            raise err
        return real(*a, **kw)
    monkeypatch.setattr(owner, name, fake)


def test_disk_full_while_saving_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "run" / ".checkpoint.npz.tmp")
    # the first epoch's save goes through; the second finds the disk full
    _fail_on(monkeypatch, np, "savez", OSError(errno.ENOSPC, "No space left on device", path),
             after=1)
    assert cli.train_main([*TINY, "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {path}: No space left on device; the disk is full; free some space "
                   f"and resume the run (its last checkpoint is as it was)\n")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz").epoch == 1
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_read_only_run_folder_on_resume_writes_nothing(run, monkeypatch, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    _fail_on(monkeypatch, os, "replace",
             OSError(errno.EROFS, "Read-only file system", str(run / "config.json")))
    assert cli.train_main(["--resume", str(run), "--epochs", "3"]) == 2
    assert capsys.readouterr().err == (
        f"error: {run / 'config.json'}: Read-only file system; it is on a read-only file "
        f"system; choose another folder with --out\n")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_permission_denied_names_the_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("x" * 500)
    _fail_on(monkeypatch, Path, "read_bytes",
             PermissionError(errno.EACCES, "Permission denied", "secret.txt"))
    assert cli.train_main(["--task", "chars", "--text", "secret.txt"]) == 2
    assert capsys.readouterr().err == ("error: --text secret.txt: Permission denied; check "
                                       "its permissions\n")
    assert not (tmp_path / "runs").exists()


def test_resume_extends_from_the_folder_or_its_checkpoint(run, capsys):
    assert cli.train_main(["--resume", str(run / "checkpoint.npz"), "--epochs", "3",
                           "--no-progress"]) == 0
    assert "resuming after epoch 2 of 3" in capsys.readouterr().out
    assert load_checkpoint(run / "checkpoint.npz").epoch == 3
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


def test_core_install_trains_without_tqdm_and_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("tqdm", "tqdm.auto", "matplotlib"):
        monkeypatch.setitem(sys.modules, name, None)       # `import name` fails
    assert cli.train_main(["--epochs", "2", "--hidden-size", "4", "--out", "run"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == ['note: tqdm and matplotlib not installed, so this run draws no progress '
                     'bars and no figures (loss_curve.png, forecast.png); pip install '
                     '"lstm-xp[train]" adds them']
    assert out.splitlines()[0] == notes[0]                  # said once, at the start
    assert "The LSTM" in out and "linear_ar" in out         # the comparison is printed
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.npz", "config.json", "metrics.json"]


def test_auto_device_is_named_everywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "cupy", None)          # no GPU here, whatever the machine
    import backends
    monkeypatch.delitem(backends._INSTANCES, "gpu", raising=False)
    assert cli.train_main([*TINY, "--device", "auto", "--out", "run"]) == 0
    assert "float32 on cpu (device 'auto' chose cpu)" in capsys.readouterr().out
    for name in ("config.json", "metrics.json"):
        assert json.loads((tmp_path / "run" / name).read_text())["device"] == "cpu"


@pytest.mark.parametrize("args", [["--tf32"], ["--tf32", "--device", "gpu", "--dtype",
                                                "float64"]])
def test_tf32_needs_float32_on_the_gpu(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    assert cli.train_main([*TINY, *args]) == 2
    err = capsys.readouterr().err
    assert "--tf32 is a cuBLAS math mode for float32 on the GPU: it needs --device gpu" in err
    assert not (tmp_path / "runs").exists()


def test_tf32_with_auto_on_a_cpu_says_it_does_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "cupy", None)
    import backends
    monkeypatch.delitem(backends._INSTANCES, "gpu", raising=False)
    assert cli.train_main([*TINY, "--device", "auto", "--tf32", "--out", "run"]) == 0
    assert "(device 'auto' chose cpu; --tf32 does nothing on the CPU)" in capsys.readouterr().out


def test_help_lists_every_option_with_help_and_per_task_defaults():
    text = " ".join(cli.train_parser().format_help().split())
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
    # the defaults each task fills in, and which options belong to which task or optimizer
    assert ("total epochs (default per task: seed 50, sunspots 60, co2 80, chars 10, "
            "adding 10, series 60)") in text
    assert "--window WINDOW past values per forecast (seed/sunspots/co2/series only; default " \
           "seed 32, sunspots 24, co2 36, series 24)" in text
    assert ("chars: characters per training sequence; adding: steps per sequence (T) "
            "(chars/adding only; default chars 64, adding 100)") in text
    assert "--momentum MOMENTUM momentum (--optimizer sgd only; default 0.9)" in text
    assert "--num-layers NUM_LAYERS stacked LSTM layers (default: 1)" in text
    for action in cli.train_parser()._actions + cli.predict_parser()._actions:
        assert action.help, action.dest


def test_flags_are_never_abbreviated(capsys):
    with pytest.raises(SystemExit):
        cli.train_parser().parse_args(["--win", "5"])
    assert "unrecognized arguments: --win 5" in capsys.readouterr().err


def test_predict_into_a_closed_pipe_exits_quietly(run):
    done = subprocess.run(f'"{sys.executable}" "{ROOT / "scripts" / "predict.py"}" run '
                          f'--steps 3000 | head -n 3', shell=True, cwd=run.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[2].startswith("t+1\t")
    assert done.stderr == ""


def test_predict_multi_step_forecast_comes_from_the_library(run):
    from lstm_xp.job.train import load_run
    _, task, model = load_run(run)
    done = script("predict.py", "run", "--steps", "4", cwd=run.parent)
    assert done.returncode == 0, done.stderr
    printed = [float(line.split("\t")[1]) for line in done.stdout.splitlines()
               if not line.startswith("#")]
    assert printed == pytest.approx(task.forecast(model, 4), rel=1e-5)
    assert "(chained)" in done.stdout
    # step 2 is the one-step forecast from the window that ends with step 1's forecast
    window = list(task.series.values[-task.window + 1:]) + [printed[0]]
    assert task.predict(model, np.array([window]))[0, 0] == pytest.approx(
        printed[1], rel=1e-5)


def test_a_foreign_backends_package_is_named(tmp_path):
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "__init__.py").write_text("")
    inherited = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p]                     # relative entries would resolve in tmp_path
    done = subprocess.run([sys.executable, "-c", "import lstm_xp"], cwd=tmp_path,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(tmp_path), *inherited])})
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: lstm_xp needs its own package 'backends' (")
    assert str(ROOT / "backends") in last and str(tmp_path / "backends") in last


def test_lstm_xp_lists_its_commands_and_dispatches(run, capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == ["train", "predict", "export", "inspect"]
    assert cli.main([]) == 2                         # no command: the list, on stderr
    assert "commands:" in capsys.readouterr().err
    assert cli.main(["predict", str(run), "--steps", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4   # a header, the chain note, 2 forecasts
    with pytest.raises(SystemExit) as done:              # argparse's own --help exits 0
        cli.main(["train", "--help"])
    assert done.value.code == 0 and "usage: lstm-xp train" in capsys.readouterr().out


def test_python_dash_m_is_the_same_program(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lstm_xp", "--help"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "predict" in done.stdout
    done = subprocess.run([sys.executable, "-m", "lstm_xp", "export", "--help"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "usage: lstm-xp export" in done.stdout


def test_help_into_a_closed_pipe_exits_quietly(tmp_path):
    """`lstm-xp --help | grep -q ...` closes the pipe early: no traceback."""
    done = subprocess.run(f'"{sys.executable}" -m lstm_xp --help | head -c 1 >/dev/null; '
                          f'"{sys.executable}" -m lstm_xp --help | true',
                          shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
