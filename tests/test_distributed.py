"""Data-parallel training over MPI: N ranks train what one process trains, rank 0 alone
writes, a failure anywhere stops every rank; run with `mpiexec -n 2` on this machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_xp.job.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mpi4py", reason="mpi4py and mpich are in the test extra")
MPIEXEC = Path(sys.executable).parent / "mpiexec"


class Ranks:
    """What ``mpiexec`` gave back: its exit status and each rank's stdout and stderr."""

    def __init__(self, returncode, folder, n):
        self.returncode = returncode
        def text(path):                 # mpiexec makes the file at a rank's first output
            return path.read_text() if path.exists() else ""
        self.out = [text(folder / f".out.{r}") for r in range(n)]
        self.err = [text(folder / f".err.{r}") for r in range(n)]

    @property
    def stderr(self):
        return "".join(f"rank {r}: {e}" for r, e in enumerate(self.err))


def mpi(n, *args, cwd, timeout=180) -> Ranks:
    """``mpiexec -n n python ARGS`` in ``cwd``, each rank's output in its own files, bounded
    in time (a hang fails the test instead of stalling CI)."""
    if not MPIEXEC.exists():
        pytest.fail(f"mpi4py is installed but {MPIEXEC} is not: install the mpich wheel")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([str(MPIEXEC), "-n", str(n), "-outfile-pattern", ".out.%r",
                           "-errfile-pattern", ".err.%r", sys.executable, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)
    return Ranks(done.returncode, Path(cwd), n)


def train_script(*args):
    return [str(ROOT / "scripts" / "train.py"), "--no-progress", *args]


def params(folder):
    return load_checkpoint(Path(folder) / "checkpoint.npz").model


@pytest.mark.parametrize("task_args", [
    ["--task", "sunspots", "--batch-size", "15"],                     # shards of 8 and 7
    ["--task", "chars", "--bptt", "16", "--batch-size", "5", "--max-chars", "12000",
     "--hidden-size", "8", "--num-layers", "2"],                      # streams split 3 / 2
], ids=["sunspots", "chars-bptt"])
def test_two_ranks_train_what_one_process_trains(task_args, tmp_path):
    common = ["--dtype", "float64", "--epochs", "3", "--hidden-size", "8", *task_args]
    two = mpi(2, *train_script("--distributed", "--out", "two", *common), cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    one = subprocess.run([sys.executable, *train_script("--out", "one", *common)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    a, b = params(tmp_path / "two"), params(tmp_path / "one")
    for name in b:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-10, atol=1e-14, err_msg=name)
    # rank 0 alone prints and writes: one run folder, nothing from rank 1
    assert two.out[1] == "" and two.err[1] == ""
    assert two.out[0].count("results in two/") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "one", "two"]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    n = sum(v.size for v in a.values())
    assert metrics["ranks"] == 2 and metrics["allreduce_bytes_per_step"] == (n + 1) * 8


def test_ranks_stay_bitwise_identical_with_one_allreduce_per_step(tmp_path):
    done = mpi(2, str(ROOT / "tests" / "mpi_program.py"), "identical", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for rank in (0, 1):
        assert done.out[rank].startswith(f"rank {rank}: bitwise identical after each of 6 "
                                         "steps, one allreduce of")


def test_resume_under_mpi_continues_bitwise(tmp_path):
    common = ["--task", "sunspots", "--dtype", "float64", "--hidden-size", "6",
              "--num-layers", "2", "--dropout", "0.3"]
    straight = mpi(2, *train_script("--distributed", "--out", "a", "--epochs", "4", *common),
                   cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    first = mpi(2, *train_script("--distributed", "--out", "b", "--epochs", "2", *common),
                cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = mpi(2, *train_script("--distributed", "--resume", "b", "--epochs", "4"),
                  cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 2 of 4" in resumed.out[0]
    a, b = params(tmp_path / "a"), params(tmp_path / "b")
    for name in a:                        # dropout masks too: each rank's generator restored
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_nan_on_one_rank_stops_every_rank_with_the_same_message(tmp_path):
    done = mpi(2, str(ROOT / "tests" / "mpi_program.py"), "nan", "run", cwd=tmp_path,
               timeout=120)
    assert done.returncode == 0, done.stderr
    messages = [out.split(" stopped: ", 1)[1] for out in done.out]     # both ranks stopped
    assert [out.split(" stopped: ")[0] for out in done.out] == ["rank 0", "rank 1"]
    assert messages[0] == messages[1] and "epoch 1, step 3: the loss is" in messages[0]


def test_a_failure_on_rank_0_alone_stops_every_rank(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    done = mpi(2, *train_script("--distributed", "--out", "taken", "--epochs", "1"),
               cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.err == ["error: taken already holds a run (it has a config.json); resume "
                        "it, or choose another run folder\n", ""]


def test_without_distributed_mpi4py_is_never_imported(tmp_path):
    code = ("import sys; from lstm_xp.job.cli import train_main; "
            "status = train_main(['--epochs', '1', '--hidden-size', '4', '--no-progress', "
            "'--out', 'r']); assert 'mpi4py' not in sys.modules; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_distributed_without_mpi_is_one_error_line(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from lstm_xp.job.cli import train_main; "
            "sys.exit(train_main(['--distributed', '--epochs', '1']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: distributed training needs mpi4py and an MPI "
                                  "implementation") and done.stderr.count("\n") == 1
    assert 'pip install "lstm-xp[mpi]"' in done.stderr
    assert not (tmp_path / "runs").exists()


class FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@pytest.mark.parametrize("batch, size", [(10, 3), (2, 3), (7, 7), (16, 2)])
def test_shards_cover_the_batch_in_rank_order(batch, size):
    from lstm_xp.distributed import Distributed
    shards = [Distributed(FakeComm(r, size), None).shard(batch) for r in range(size)]
    rows = [i for s in shards for i in range(batch)[s]]
    assert rows == list(range(batch))
    lengths = [s.stop - s.start for s in shards]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == [len(part) for part in np.array_split(np.arange(batch), size)]
