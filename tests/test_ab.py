"""scripts/ab.py times the working tree against a git revision and cleans up after itself."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ab():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of lstm-xp")
    spec = importlib.util.spec_from_file_location("ab_script", ROOT / "scripts" / "ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worktrees():
    out = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True,
                         text=True, check=True).stdout
    return len(out.splitlines())


def test_ab_against_head_prints_ratios_and_removes_its_worktree(ab, capsys, monkeypatch):
    monkeypatch.setitem(ab.CONFIGS, "tiny", dict(T=4, B=2, I=3, H=5))
    before = worktrees()
    assert ab.main(["--ref", "HEAD", "--configs", "tiny", "--rounds", "1", "--steps", "1"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| tiny |"))
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    assert len(cells) == 9
    assert cells[2] > 0 and cells[5] > 0 and cells[8] > 0   # the ratios
    assert worktrees() == before


@pytest.mark.parametrize("ref", ["no-such-revision-xyz", "HEAD:README.md"])
def test_ab_refuses_what_is_not_a_commit(ab, capsys, ref):
    with pytest.raises(SystemExit):
        ab.main(["--ref", ref, "--configs", "seed"])
    assert "is not a commit" in capsys.readouterr().err
