"""Run under mpiexec by tests/test_distributed.py: lstm_xp.distributed from research code.

    mpiexec -n 2 python tests/mpi_program.py identical   # ranks stay bitwise equal each step
    mpiexec -n 2 python tests/mpi_program.py nan DIR     # rank 1 alone meets a NaN
"""

import hashlib
import sys

import numpy as np

from lstm_xp import distributed
from lstm_xp.job.train import TrainConfig, TrainingDiverged, train


def identical() -> None:
    from lstm_xp import LSTM, Adam, Linear, MSELoss
    from lstm_xp.job.models import Model
    dist = distributed.setup()

    class Net(Model):
        def __init__(self, seed):            # a different init on each rank: broadcast fixes it
            self.lstm = LSTM(3, 6, num_layers=2, dtype="float64", seed=seed)
            self.head = Linear(6, 1, dtype="float64", seed=seed + 100)
            self.layers = {"lstm": self.lstm, "head": self.head}

    net = Net(seed=dist.rank)
    dist.broadcast_parameters(net)
    opt = Adam(net.optimizable(), lr=0.05)
    rng = np.random.default_rng(0)            # the same global batches on every rank
    loss_fn = MSELoss()
    for step in range(6):
        x = rng.standard_normal((7, 5, 3))    # B = 5 over 2 ranks: shards of 3 and 2
        target = rng.standard_normal((5, 1))
        rows = dist.shard(5)
        net.zero_grad()
        _, (h_n, _) = net.lstm.forward(x[:, rows])
        loss = loss_fn.forward(net.head.forward(h_n[-1]), target[rows])
        dh = np.zeros_like(h_n)
        dh[-1] = net.head.backward(loss_fn.backward())
        net.lstm.backward(None, (dh, None))
        dist.average_gradients(net, loss, (rows.stop - rows.start) / 5)
        opt.step()
        digest = hashlib.sha256(b"".join(p.tobytes() for p in net.parameters())).hexdigest()
        digests = dist.comm.allgather(digest)
        assert len(set(digests)) == 1, f"step {step}: ranks differ"
    n = sum(p.size for p in net.parameters())
    assert dist.steps == 6 and dist.bytes_per_step == (n + 1) * 8, (dist.steps,
                                                                     dist.bytes_per_step)
    print(f"rank {dist.rank}: bitwise identical after each of 6 steps, one allreduce of "
          f"{dist.bytes_per_step} bytes per step")


def nan(folder: str) -> None:
    from lstm_xp.job.tasks import ForecastTask
    dist = distributed.setup()
    real = ForecastTask.train_step
    calls = []

    def poisoned(self, model, x, target):
        calls.append(1)
        value = real(self, model, x, target)
        if dist.rank == 1 and len(calls) == 3:     # this rank alone, at its third step
            model.head.grads["bias"][...] = np.nan
        return value

    ForecastTask.train_step = poisoned
    try:
        train(TrainConfig(task="sunspots", epochs=2, hidden_size=4), folder, progress=False,
              echo=lambda *_: None, dist=dist)
    except TrainingDiverged as err:
        print(f"rank {dist.rank} stopped: {err}")
        return
    print(f"rank {dist.rank} did not stop")


if __name__ == "__main__":
    {"identical": identical, "nan": nan}[sys.argv[1]](*sys.argv[2:])
