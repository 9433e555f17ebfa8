"""docs/ERRORS.md is executable: each row's call raises exactly the error and message shown,
and each command-line row exits with the status and prints exactly the line shown."""

import re
import shlex
from pathlib import Path

import pytest

import backends
from lstm_xp.job import cli
from lstm_xp.job.train import TrainConfig, train

DOC = Path(__file__).resolve().parents[1] / "docs" / "ERRORS.md"
ROW = re.compile(r"\| `(.+)` \| (\w+) \| (.*) \|")


WORKS = re.compile(r"\| `(.+)` \| `(.+)` \|")


def doc_parts():
    library, rest = DOC.read_text().split("## Calls that work", 1)
    working, command_line = rest.split("## Command line", 1)
    setup = re.search(r"```python\n(.*?)```", library, re.S).group(1)

    def rows(text):
        return [(m.group(1), m.group(2), m.group(3).replace("\\|", "|"))
                for m in map(ROW.fullmatch, text.splitlines()) if m]

    works = [m.groups() for m in map(WORKS.fullmatch, working.splitlines()) if m]
    return setup, rows(library), works, rows(command_line)


SETUP, ROWS, WORKING, CLI_ROWS = doc_parts()


def test_the_table_covers_every_entry_point():
    calls = " ".join(call for call, _, _ in ROWS)
    for entry in ("LSTM(", ".forward(", ".backward(", "load_params", "lengths=", "Linear(",
                  "MSELoss", "CrossEntropyLoss", "Adam(", "clip_grad_norm", "load_checkpoint",
                  "TrainConfig", "get_backend", "reset(", "xp_strict"):
        assert entry in calls, entry
    assert len(ROWS) >= 40
    commands = " ".join(call for call, _, _ in CLI_ROWS)
    for entry in ("--resume", "--out", "--text", "--encoding", "--window", "--bptt",
                  "lstm-xp predict", "--prime", "--steps", "lstm-xp export"):
        assert entry in commands, entry


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


@pytest.mark.parametrize("call, check", WORKING, ids=[r[0][:60] for r in WORKING])
def test_documented_working_call(call, check, tmp_path, monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(SETUP, ns)
    exec(call, ns)
    assert eval(check, ns)


def test_the_working_calls_are_there():
    assert len(WORKING) >= 6


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    """The folder the command-line rows run in (see the paragraph above that table)."""
    root = tmp_path_factory.mktemp("cli")
    train(TrainConfig(task="seed", epochs=2, hidden_size=4), root / "run", progress=False,
          echo=lambda *_: None)
    (root / "notes.txt").write_text("just some notes\n")
    (root / "folder").mkdir()
    (root / "bin.dat").write_bytes(b"ELF\x00\x01\x02" * 50)
    (root / "latin.txt").write_bytes("plain é and more plain text".encode("latin-1") * 10)
    rows = [f"{2029 + k // 12}-{k % 12 + 1:02d},{100 + k}" for k in range(60)]
    csvs = {"sales.csv": rows, "na.csv": rows[:5] + ["2029-06,NA"] + rows[6:],
            "text.csv": rows[:5] + ["2029-06,n/a?"] + rows[6:],
            "inf.csv": rows[:5] + ["2029-06,inf"] + rows[6:], "gap.csv": rows[:5] + rows[6:],
            "back.csv": rows[:5] + ["2029-04,105"] + rows[6:], "short.csv": rows[:20],
            "edge.csv": ["2029-01,"] + rows[1:]}
    for name, lines in csvs.items():
        (root / name).write_text("month,sales\n" + "\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("command, status, stderr", CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_documented_command_line_error(command, status, stderr, cli_folder, monkeypatch, capsys):
    monkeypatch.chdir(cli_folder)
    before = (cli_folder / "run" / "checkpoint.npz").read_bytes()
    program, *argv = shlex.split(command)
    assert program == "lstm-xp"
    assert cli.main(argv) == int(status)
    assert capsys.readouterr().err == stderr + "\n"
    assert (cli_folder / "run" / "checkpoint.npz").read_bytes() == before
    assert sorted(p.name for p in (cli_folder / "run").iterdir()) == sorted(
        ["checkpoint.npz", "config.json", "metrics.json", "loss_curve.png", "forecast.png"])
    assert not [p.name for p in cli_folder.iterdir() if p.name.startswith(".")]
    assert not [p.name for p in cli_folder.iterdir() if p.name.startswith("series-")]
    assert not (cli_folder / "runs").exists()        # a refused run claims no folder
