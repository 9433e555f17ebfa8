"""The training loop used by ``scripts/train.py`` and by research code.

    from lstm_xp.job import TrainConfig, train, resume, load_run
    result = train(TrainConfig(task="sunspots", epochs=40), "runs/sunspots")
    result.metrics["test_rmse"], result.metrics["baselines"]
    result = resume("runs/sunspots", epochs=80)      # continue where it stopped
    cfg, task, model = load_run("runs/sunspots")    # best parameters, ready to predict

A run directory receives ``config.json``, ``checkpoint.npz`` (after every epoch, atomically),
``metrics.json`` (scores, the epoch whose parameters were tested, the per-epoch history),
``loss_curve.png`` and the task's own output (series: ``forecast.png``; chars:
``samples.txt``). Everything that differs between tasks is asked of the task
(``lstm_xp.tasks``); this module never branches on which task it runs.

A clean stop. While ``train()`` or ``resume()`` runs (in the main thread), SIGINT (Ctrl-C, a
notebook's interrupt) and SIGTERM (a scheduler's stop) ask the run to stop: it stops before
its next training step, leaves ``checkpoint.npz`` as the last complete epoch wrote it, and
raises :class:`RunInterrupted` (a ``KeyboardInterrupt``, so ``except Exception`` does not
swallow it), which says which epoch is saved and how to continue::

    try:
        result = train(cfg, "runs/x")
    except RunInterrupted as stop:
        print(stop)                       # stopped by SIGINT after epoch 3 of 10 ...
        result = resume(stop.run_dir, epochs=stop.epochs)   # later: carry on

The previous handlers are back once the call returns. A second signal more than a second
after the first stops at once, as it would without this (the checkpoint on disk stays
intact: it is replaced atomically). Under MPI every rank stops at the same step: the ranks
agree on a stop with a one-number allreduce before each step.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from backends import BackendUnavailableError, get_backend, install_command, pin_gpu

from ..arrays import finite_checks
from ..optim import SGD, Adam, global_grad_norm, scale_grads
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .baselines import TIE_MARGIN
from .config import TrainConfig
from .options import ConfigError
from .tasks import build_task


class TrainingDiverged(RuntimeError):
    """A step produced a non-finite loss or gradient (the message names the step)."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run (see the module docstring); raised by ``train()`` and
    ``resume()`` on every rank.

    Attributes:
        signal: the ``signal.Signals`` that stopped it (under MPI: the highest any rank got).
        epoch_saved: the epoch of the run folder's ``checkpoint.npz`` (the last complete
            epoch), or None when none was saved: then there is nothing to resume, and the
            run folder was removed (``folder_removed``), or only its ``config.json`` when the
            folder was there before the run; ``run_dir`` is None if no folder was claimed.
        run_dir: the run folder (a ``Path`` as it was given, or under ``runs_root``).
        epochs: the run's total epochs: ``resume(run_dir, epochs=epochs)`` continues it.
        exit_status: 128 + the signal number (130 for SIGINT, 143 for SIGTERM), what a shell
            reports for a process the signal ended.
    """

    def __init__(self, signum, epoch_saved, run_dir, epochs, folder_removed=False):
        self.signal = signal.Signals(signum)
        self.epoch_saved, self.epochs = epoch_saved, epochs
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.folder_removed = folder_removed
        self.exit_status = 128 + int(self.signal)
        super().__init__(self.describe())

    def __reduce__(self):             # picklable (multiprocessing, MPI): rebuilt from its facts
        return (type(self), (int(self.signal), self.epoch_saved, self.run_dir, self.epochs,
                             self.folder_removed))

    def describe(self, resume_with: str | None = None) -> str:
        """One sentence: what is saved and how to continue; ``resume_with`` is the command
        prefix to show (e.g. ``"lstm-xp train"``), else the ``resume()`` call is shown."""
        name = self.signal.name
        if self.run_dir is None:
            return f"stopped by {name} before the run began: nothing was saved"
        if self.epoch_saved is None:
            where = (f"the run folder {self.run_dir} was removed" if self.folder_removed else
                     f"{self.run_dir / 'config.json'} was removed")
            return (f"stopped by {name} before the first epoch was saved: nothing to resume "
                    f"({where}; starting the same run again starts it afresh)")
        run = str(self.run_dir)
        how = (f"{resume_with} --resume {shlex.quote(run)} --epochs {self.epochs}"
               if resume_with else f"resume({run!r}, epochs={self.epochs})")
        return (f"stopped by {name} after epoch {self.epoch_saved} of {self.epochs} "
                f"(saved in {self.run_dir / 'checkpoint.npz'}); to continue: {how}")


class _StopSignals:
    """SIGINT and SIGTERM, while a run lasts, set ``signum`` instead of ending the process;
    the loop polls it (``_stop_requested``). Installed only from the main thread (Python
    allows no other); the previous handlers are put back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    FORCE_AFTER_S = 1.0      # a repeat this soon is the same request delivered twice (a
                             # process group and mpiexec both forward it); later, it insists

    def __init__(self):
        self.signum, self._first, self._previous = 0, 0.0, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):       # e.g. an embedding that forbids it
                    pass
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if not self.signum:
            self.signum, self._first = signum, now
            return
        if now - self._first < self.FORCE_AFTER_S:
            return
        previous = self._previous.get(signum, signal.SIG_DFL)   # asked again: stop at once
        self._restore()
        if callable(previous):
            previous(signum, frame)          # SIGINT's default raises KeyboardInterrupt
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signum)     # the default action: the process ends


def _stop_requested(stops: _StopSignals, dist) -> int:
    """The signal number that asks this run to stop, 0 if none; under MPI agreed by every
    rank (a one-number allreduce: every rank must call this at the same points)."""
    if dist is None:
        return stops.signum
    mine = np.array([stops.signum], dtype=np.int64)
    agreed = np.zeros_like(mine)
    dist.comm.Allreduce(mine, agreed, op=dist.MPI.MAX)
    return int(agreed[0])


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    history: list
    model: object
    task: object
    files: list = field(default_factory=list)    # what the run folder holds, by name


def make_optimizer(cfg: TrainConfig, layers):
    if cfg.optimizer == "sgd":
        return SGD(layers, lr=cfg.lr, momentum=cfg.momentum, decay=cfg.lr_decay)
    return Adam(layers, lr=cfg.lr)


def new_run_dir(task: str, root="runs") -> Path:
    """A new, empty folder ``root/<task>-<YYYYmmdd-HHMMSS>``, created atomically: a run
    started in the same second gets ``...-2`` (then ``-3``, ...), never the same folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 10_000):
        path = root / (f"{task}-{stamp}" + (f"-{k}" if k > 1 else ""))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"could not find a free run folder name under {root}")


def run_folder(run) -> Path:
    """The run folder of ``run``: the folder itself, or the path of its checkpoint.npz.

    Raises:
        ValueError: ``run`` is some other file (say a copy of an older checkpoint): the run
            is its folder's checkpoint.npz, which would not be that file.
    """
    path = Path(run)
    if path.name == "checkpoint.npz":
        return path.parent
    if path.is_file():
        raise ValueError(f"{path} is a file but not a run's checkpoint.npz; pass the run "
                         f"folder, or the checkpoint.npz inside it")
    return path


def train(cfg: TrainConfig, run_dir=None, *, progress: bool | None = None, echo=print,
          runs_root="runs", dist=None) -> RunResult:
    """Train from scratch into ``run_dir``, or into a new folder under ``runs_root``.

    The run seeds the generator of its device's backend (dropout masks) from ``cfg.seed``,
    replacing any ``lstm_xp.manual_seed`` made before. With ``dist`` (from
    ``lstm_xp.distributed.setup()``) the run is data parallel over its ranks: the global
    batches are split across them, gradients averaged each step; rank 0 alone prints and
    writes the run folder.

    ``run_dir`` is claimed atomically (its ``config.json`` is created exclusively), so a
    folder that already holds a run, or that another process claims first, is an error.

    ``progress``: tqdm bars per epoch (True), none (False), or, by default (None), bars only
    when stdout and stderr are both terminals, so that log files get no carriage returns;
    ``echo`` gets one line per epoch either way.

    Raises:
        RunInterrupted: SIGINT or SIGTERM stopped the run (the module docstring has how).
    """
    return _run(cfg.resolved(), None if run_dir is None else Path(run_dir), None, progress,
                echo, runs_root, dist)


def resume(run, *, epochs: int | None = None, device: str | None = None,
           progress: bool | None = None, echo=print, dist=None) -> RunResult:
    """Continue a run from its last saved epoch, up to ``epochs`` in total.

    ``run`` is the run folder or its ``checkpoint.npz``. A run is only extended: ``epochs``
    must exceed the epochs it has trained (its saved total when not given), else a
    ConfigError says how many it has, and nothing is written. ``progress`` as for train().

    Raises:
        RunInterrupted: SIGINT or SIGTERM stopped the run (the module docstring has how).
    """
    run_dir = run_folder(run)
    ckpt = load_checkpoint(run_dir / "checkpoint.npz")
    cfg = TrainConfig.from_dict(ckpt.config)
    done = len(ckpt.extra.get("history", ())) or ckpt.epoch
    if epochs is None and done >= (cfg.epochs or 0):
        raise ConfigError("epochs", "the run in {run} is complete: it has trained all {done} "
                          "of its epochs; to train further pass {name} N with N > {done}",
                          run=str(run_dir), done=done)
    if epochs is not None and not isinstance(epochs, bool) and isinstance(epochs, int) \
            and epochs <= done:
        raise ConfigError("epochs", "{name} {got} does not extend the run in {run}, which has "
                          "trained {done} epochs already; pass {name} N with N > {done}",
                          got=epochs, run=str(run_dir), done=done)
    cfg = replace(cfg, epochs=epochs or cfg.epochs, device=device or cfg.device).resolved()
    return _run(cfg, run_dir, ckpt, progress, echo, None, dist)


def load_run(run, *, device: str | None = None, which: str = "best"):
    """(config, task, model) of a saved run (its folder or checkpoint.npz), with its
    ``which`` ("best" or "last") parameters."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    run_dir = run_folder(run)
    ckpt = load_checkpoint(run_dir / "checkpoint.npz")
    cfg = TrainConfig.from_dict(ckpt.config)
    cfg = replace(cfg, device=device or cfg.device).resolved()
    cfg = replace(cfg, device=get_backend(cfg.device).name)
    task = build_task(cfg, run_dir)            # from what the run keeps (a CSV: its copy)
    _check_same_data(ckpt, task, run_dir)
    model = task.build_model(cfg)
    model.load_state_dict(ckpt.best if which == "best" and ckpt.best else ckpt.model)
    return cfg, task, model


def _check_same_data(ckpt, task, run_dir) -> None:
    """Refuse to continue or load a run whose data has changed (vocabulary, text, series)."""
    saved, now = ckpt.extra.get("data"), task.describe()
    # facts the saved run recorded (a run saved before a fact was recorded is not refused
    # for lacking it), compared after a round trip through JSON as the checkpoint stores them
    now = json.loads(json.dumps(now))
    changed = sorted(k for k in set(saved or {})
                     if k != "source" and saved.get(k) != now.get(k))
    if changed and "sha256" in changed and now.get("path"):      # a file of the user's
        raise ValueError(f"{now['path']} has changed since the run in {run_dir} was trained "
                         f"on it (its sha256 differs); restore the file, or start a new run")
    if changed:
        raise ValueError(f"the data of the run in {run_dir} has changed since it was trained "
                         f"(differs in: {', '.join(changed)}); its parameters would not fit it")


def _claim(run_dir: Path, cfg: TrainConfig) -> None:
    """Create run_dir (if needed) and its config.json exclusively: the folder is this run's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(run_dir / "config.json", "x", encoding="utf-8") as f:
            f.write(json.dumps(asdict(cfg), indent=2) + "\n")
    except FileExistsError:
        raise FileExistsError(f"{run_dir} already holds a run (it has a config.json); resume "
                              f"it, or choose another run folder") from None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _on_terminals() -> bool:
    """Whether stdout (the epoch lines) and stderr (tqdm's bars) are both terminals."""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):          # replaced by an object, or closed
        return False


def _extras(progress: bool | None, echo):
    """(tqdm or None, whether figures can be drawn); one note naming whatever is missing.
    ``progress`` None: bars only on terminals (tqdm's absence is noted all the same)."""
    from . import plots
    bars, skipped = None, []
    if progress is not False:
        try:
            from tqdm.auto import tqdm as bars
        except ImportError:
            skipped.append(("tqdm", "progress bars"))
        if progress is None and not _on_terminals():
            bars = None
    figures = plots.available()
    if not figures:
        skipped.append(("matplotlib", "figures (loss_curve.png, forecast.png)"))
    if skipped:
        echo(f"note: {' and '.join(n for n, _ in skipped)} not installed, so this run draws "
             f"no {' and no '.join(w for _, w in skipped)}; {install_command('train')} "
             f"adds {'them' if len(skipped) > 1 else 'it'}")
    return bars, figures


@dataclass
class _Session:
    """What a run holds while it trains."""

    cfg: TrainConfig
    task: object
    model: object
    optimizer: object
    rng: object                  # batch order
    backend: object
    history: list
    best_val: float
    best: dict | None
    seconds: float
    chose: str                   # how "auto" was resolved, for the banner
    best_epoch: int | None = None    # the epoch whose parameters ``best`` holds


def _quiet(*_) -> None:
    pass


def _dropout_seed(cfg, *salt) -> int:
    return int(np.random.default_rng([cfg.seed, 2, *salt]).integers(2**31))


def _prepare(cfg: TrainConfig, run_dir, ckpt, dist) -> _Session:
    """Backend, task, model and optimizer of a run, restored from ``ckpt`` when resuming."""
    if dist is not None and cfg.device != "cpu":
        try:                              # ranks sharing a machine take different GPUs
            pin_gpu(dist.rank)
        except BackendUnavailableError:
            if cfg.device == "gpu":
                raise
    backend = get_backend(cfg.device)   # fail first, with the backend's one-sentence reason
    chose = f" (device {cfg.device!r} chose {backend.name})" if cfg.device != backend.name else ""
    if backend.name == "gpu":
        backend.allow_tf32 = cfg.tf32      # set either way: the backend outlives this run
    elif cfg.tf32:                          # only 'auto' gets here (config refuses cpu)
        chose = chose[:-1] + "; --tf32 does nothing on the CPU)"
    cfg = replace(cfg, device=backend.name)       # config.json and metrics.json say the same
    rank, ranks = (0, 1) if dist is None else (dist.rank, dist.size)
    task = build_task(cfg) if ckpt is None else build_task(cfg, run_dir, resuming=True)
    model = task.build_model(cfg)
    optimizer = make_optimizer(cfg, model.optimizable())
    rng = np.random.default_rng([cfg.seed, 1])   # batch order: the same on every rank
    # dropout masks: one stream per rank (a one-process run is rank 0 of 1)
    backend.manual_seed(_dropout_seed(cfg) if ranks == 1 else _dropout_seed(cfg, 0, rank))
    s = _Session(cfg, task, model, optimizer, rng, backend, [], math.inf, None, 0.0, chose)
    if ckpt is None:
        return s
    _check_same_data(ckpt, task, run_dir)
    model.load_state_dict(ckpt.model)
    optimizer.load_state_dict(ckpt.optim)
    rng.bit_generator.state = ckpt.rng
    states = ckpt.extra.get("dropout_rng")
    states = [states] if isinstance(states, dict) else list(states or [])
    if len(states) == ranks and states[rank] is not None:
        backend.set_generator_state(states[rank])
    else:            # not restorable (a GPU, another number of ranks): other masks than an
        backend.manual_seed(_dropout_seed(cfg, ckpt.epoch, rank))   # uninterrupted run's
    try:
        s.history = ckpt.extra["history"]
        s.best_val, s.seconds = ckpt.extra["best_val"], ckpt.extra["wall_seconds"]
    except KeyError as err:
        raise CheckpointError(f"{run_dir / 'checkpoint.npz'} lacks the training history "
                              f"({err}); it was not written by lstm_xp.train") from None
    s.best = ckpt.best or None
    s.best_epoch = ckpt.extra.get("best_epoch") or (_best_of(s.history, task.metric)
                                                    if s.best else None)
    return s


def _best_of(history, metric):
    """The epoch of the lowest validation score in ``history`` (the first of equals), as
    the loop chose ``best``; None for an empty history or no finite score."""
    scores = [(h[f"val_{metric}"], h["epoch"]) for h in history
              if math.isfinite(h[f"val_{metric}"])]
    return min(scores, key=lambda t: t[0])[1] if scores else None


def _on_root(dist, fn):
    """``fn()`` here without MPI; on rank 0 only, its outcome shared, with it
    (``Distributed.on_root``)."""
    return fn() if dist is None else dist.on_root(fn)


def _run(cfg: TrainConfig, run_dir, ckpt, progress, echo, runs_root, dist=None) -> RunResult:
    with _StopSignals() as stops:       # SIGINT/SIGTERM: a RunInterrupted, between steps
        return _run_stoppable(cfg, run_dir, ckpt, progress, echo, runs_root, dist, stops)


def _run_stoppable(cfg: TrainConfig, run_dir, ckpt, progress, echo, runs_root, dist,
                   stops) -> RunResult:
    if dist is not None and not dist.is_root:       # rank 0 alone prints and writes
        echo, progress = _quiet, False
    s = error = None
    try:
        s = _prepare(cfg, run_dir, ckpt, dist)
    except Exception as err:
        if dist is None:
            raise
        error = err
    if dist is not None:
        dist.all_ok(error)            # a rank that failed to start stops every rank
    cfg, task, model, backend = s.cfg, s.task, s.model, s.backend
    tqdm, figures = _extras(progress, echo)
    saved = ckpt.epoch if ckpt is not None else None     # the epoch checkpoint.npz holds
    signum = _stop_requested(stops, dist)
    if signum:                                            # nothing claimed or written yet
        raise RunInterrupted(signum, saved, run_dir if ckpt is not None else None, cfg.epochs)

    def claim():
        if ckpt is not None:   # rewritten through a temporary file: a read-only folder fails
            _write_atomically(run_dir / "config.json",       # here, before training
                              json.dumps(asdict(cfg), indent=2) + "\n")
            return run_dir, False
        folder = new_run_dir(cfg.task, runs_root) if run_dir is None else run_dir
        made = not folder.exists()
        _claim(folder, cfg)
        task.keep_data(folder)     # what predict and resume need if the data file moves
        return folder, made

    run_dir, made = _on_root(dist, claim)
    run_dir = Path(run_dir)

    def stopped(signum):
        """The RunInterrupted to raise; a run stopped before its first save gives its
        folder back (a folder holding only config.json would refuse the same --out)."""
        if saved is None and (dist is None or dist.is_root):
            _unclaim(run_dir, made, task.kept_files())
        return RunInterrupted(signum, saved, run_dir, cfg.epochs, saved is None and made)

    layers = model.optimizable()
    start_epoch = len(s.history)
    n_params = sum(layer.num_params() for layer in layers)
    metric = task.metric
    echo(f"task {cfg.task}: {task.summary_line()}")
    ranks = "" if dist is None else f" x {dist.size} ranks (data parallel over MPI)"
    echo(f"model: LSTM({cfg.num_layers} x {cfg.hidden_size}) + linear head, {n_params} parameters, "
         f"{cfg.dtype} on {cfg.device}{s.chose}{ranks}; {cfg.optimizer} lr={cfg.lr}; "
         f"run dir {run_dir}")
    echo(f"train loss: {task.train_loss} (training batches); val {metric}: on the validation "
         f"split, lower is better")
    if start_epoch:
        echo(f"resuming after epoch {start_epoch} of {cfg.epochs}")
    if dist is not None:
        dist.broadcast_parameters(model)      # equal already (same seed); guaranteed now
        dist.training = True
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        train_loss, skipped = _train_epoch(task, model, layers, s.optimizer, s.rng, cfg,
                                           epoch, tqdm, run_dir, dist,
                                           lambda: _stop_requested(stops, dist), stopped)
        val = task.evaluate(model, "val")       # on every rank: the same parameters
        s.seconds += time.perf_counter() - t0
        s.history.append({"epoch": epoch + 1, "train_loss": train_loss, f"val_{metric}": val,
                          "skipped_steps": skipped, "seconds": round(s.seconds, 3)})
        if val < s.best_val:
            s.best_val, s.best, s.best_epoch = val, model.state_dict(), epoch + 1
        generators = ([backend.generator_state()] if dist is None
                      else dist.gather(backend.generator_state()))
        # a signal during the save only sets a flag: the save completes (atomically), and
        # the stop, at the next step, reports this epoch, the one on disk
        _on_root(dist, lambda: save_checkpoint(run_dir / "checkpoint.npz", Checkpoint(
            epoch=epoch + 1, config=asdict(cfg), rng=s.rng.bit_generator.state,
            model=model.state_dict(), optim=s.optimizer.state_dict(), best=s.best or {},
            extra={"history": s.history, "best_val": s.best_val, "wall_seconds": s.seconds,
                   "best_epoch": s.best_epoch, "data": task.describe(),
                   "dropout_rng": generators})))
        saved = epoch + 1
        note = f", {skipped} non-finite steps skipped" if skipped else ""
        echo(f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {train_loss:.5g}  "
             f"val {metric} {val:.5g}{' *' if s.best_val == val else ''}  ({s.seconds:.1f} s)"
             f"{note}")
    if dist is not None:
        dist.training = False
    # every epoch is saved: a stop asked for now lets the summary (seconds) finish
    return _finish(cfg, run_dir, task, model, s.best, s.history, s.seconds, figures, echo,
                   dist, s.best_epoch)


def _unclaim(run_dir: Path, made: bool, kept=()) -> None:
    """Undo ``_claim`` of a run that saved nothing: its config.json and the task's ``kept``
    files, and its folder if the run made it (and it is empty)."""
    try:
        for name in ("config.json", *kept):
            (run_dir / name).unlink(missing_ok=True)
        if made:
            run_dir.rmdir()
    except OSError:
        pass


def _train_epoch(task, model, layers, optimizer, rng, cfg, epoch, tqdm, run_dir, dist=None,
                 stop_requested=lambda: 0, stopped=None):
    """One epoch's steps: (mean train loss, skipped steps). Before each step
    ``stop_requested()`` (on every rank alike) may end it with ``stopped(signum)``."""
    bar = None
    if tqdm is not None:
        bar = tqdm(total=task.steps_per_epoch(cfg), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", leave=False, dynamic_ncols=True)
    try:
        return _steps(task, model, layers, optimizer, rng, cfg, epoch, bar, run_dir, dist,
                      stop_requested, stopped)
    finally:
        if bar is not None:
            bar.close()


def _steps(task, model, layers, optimizer, rng, cfg, epoch, bar, run_dir, dist,
           stop_requested, stopped):
    total, count, skipped = 0.0, 0, 0
    xp = model.backend.xp
    for step, (x, target) in enumerate(task.batches(rng, cfg), 1):
        signum = stop_requested()
        if signum:                           # the epoch is dropped; the last saved one stays
            raise stopped(signum)
        model.zero_grad()                    # gradients accumulate: one step's only
        if dist is not None:                 # this rank's rows of the global batch
            rows = dist.shard(len(x))
            weight = (rows.stop - rows.start) / len(x)
            x, target = x[rows], target[rows]
        # the step's own arrays (gradients, carried state) are checked here, as one verdict
        # on the loss and the gradient norm, not by the input checks of each layer call
        with finite_checks(False):
            loss = (task.train_step(model, x, target) if len(x)
                    else model.backend.zeros((), next(iter(model.params.values())).dtype))
        if dist is not None:                 # one allreduce: gradients and loss, averaged
            loss = dist.average_gradients(model, loss, weight)
        value, norm = (float(v) for v in model.backend.to_numpy(   # one transfer
            xp.stack([loss, global_grad_norm(layers)])))
        if not (math.isfinite(value) and math.isfinite(norm)):
            if cfg.on_nonfinite == "stop":
                kept = (f"the last good checkpoint ({run_dir / 'checkpoint.npz'}, after epoch "
                         f"{epoch}) is unchanged" if epoch else "no checkpoint was written yet")
                diverged = TrainingDiverged(
                    f"epoch {epoch + 1}, step {step}: the loss is {value} and the gradient norm "
                    f"{norm}; training stopped and {kept}. Lower --lr, set --clip, or pass "
                    f"--on-nonfinite skip to skip such steps.")
                diverged.collective = True   # decided on the averaged values: every rank
                raise diverged
            skipped += 1
            task.reset_state()
        else:
            if cfg.clip and norm > cfg.clip:     # clip_grad_norm, with the norm already known
                scale_grads(layers, cfg.clip / norm)
            optimizer.step()
            total += value
            count += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(count, 1):.4g}")
    if count == 0:
        raise TrainingDiverged(f"epoch {epoch + 1}: every step was non-finite and skipped")
    return total / count, skipped


def _finish(cfg, run_dir, task, model, best, history, seconds, figures, echo,
            dist=None, best_epoch=None) -> RunResult:
    if best:
        model.load_state_dict(best)
    metric = task.metric
    score = task.evaluate(model, "test")
    baselines = task.baselines()
    # a task may add scores (forecasting: per step ahead, intervals, a backtest) and decide
    # the verdict by them
    report = task.test_report(model) if hasattr(task, "test_report") else {}
    verdict = report.get("verdict") or {k: _verdict(score, v) for k, v in baselines.items()}
    if best_epoch is None:
        best_epoch = _best_of(history, metric)
    # the parameters just tested: the best validation epoch's, else (no finite validation
    # score) the last epoch's
    tested = ({"epoch": best_epoch, "chosen_by": "best validation epoch"} if best else
              {"epoch": len(history), "chosen_by": "last epoch"})
    said = f"{tested['chosen_by']}, {tested['epoch']} of {len(history)}" + (
        "" if best else " (no epoch had a finite validation score)")
    metrics = {
        "task": cfg.task, "device": model.backend.name, "dtype": cfg.dtype,
        f"test_{metric}": score, "metric": metric, "baselines": baselines,
        "lstm_beats": sorted(k for k, v in verdict.items() if v == "beats"),
        "ties": sorted(k for k, v in verdict.items() if v == "ties"),
        "beaten_by": sorted(k for k, v in verdict.items() if v == "beaten by"),
        "tie_margin": TIE_MARGIN, "train_loss": task.train_loss,
        "epochs": len(history), "best_epoch": best_epoch, "tested_epoch": tested["epoch"],
        "tested_epoch_chosen_by": tested["chosen_by"], "wall_seconds": round(seconds, 3),
        "parameters": sum(layer.num_params() for layer in model.optimizable()),
        "data": task.describe(),
        **report.get("metrics", {}),
        "versions": {"python": platform.python_version(), **model.backend.describe()},
        # per epoch: mean train loss, validation score, skipped steps, seconds since the
        # run began (cumulative over resumes)
        "history": history,
    }
    if dist is not None:
        metrics["ranks"] = dist.size
        metrics["allreduce_bytes_per_step"] = dist.bytes_per_step

    def write() -> list:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        written = ["metrics.json", "config.json", "checkpoint.npz"]
        if figures and history:
            from . import plots
            plots.loss_curve(history, metric, task.train_loss, best_epoch,
                             f"{cfg.task}: training loss and validation {metric}",
                             run_dir / "loss_curve.png")
            written.append("loss_curve.png")
        return written + task.write_outputs(model, run_dir, {"lstm": score, **baselines},
                                            figures)

    written = _on_root(dist, write)
    for line in report.get("lines", ()):
        echo(line)
    echo(_summary(metric, score, baselines, verdict, said, report.get("verdict_basis")))
    return RunResult(run_dir, metrics, history, model, task, written)


def _verdict(score: float, baseline: float) -> str:
    """How the LSTM's score compares with a baseline's (lower is better)."""
    if score < baseline * (1 - TIE_MARGIN):
        return "beats"
    if baseline < score * (1 - TIE_MARGIN):
        return "beaten by"
    return "ties"


def _summary(metric, score, baselines, verdict, tested: str = "", basis: str | None = None
             ) -> str:
    """The comparison printed at the end of a run; ``tested`` says which epoch's parameters
    the LSTM's score is of (e.g. "best validation epoch, 7 of 10"); ``basis`` says what
    decided the verdict when not these scores (e.g. "by the backtest over 10 origins")."""
    width = max(len(k) for k in list(baselines) + ["lstm"]) + 2
    notes = {"beats": "", "ties": f"   <- a tie (within {TIE_MARGIN:.0%})",
             "beaten by": "   <- does better than the LSTM"}
    if basis:
        notes = {"beats": "", "ties": f"   <- a tie {basis}",
                 "beaten by": f"   <- does better than the LSTM {basis}"}
    lines = [f"test {metric} (lower is better), same test points for every model"
             + (f"; the verdict is {basis} (above), not these pooled scores:" if basis
                else ":"),
             f"  {'lstm':<{width}}{score:.5g}" + (f"   <- parameters of the {tested}"
                                                   if tested else "")]
    lines += [f"  {name:<{width}}{value:.5g}{notes[verdict[name]]}"
              for name, value in baselines.items()]
    groups = {v: [k for k in baselines if verdict[k] == v] for v in notes}
    if len(groups["beats"]) == len(baselines):
        lines.append("The LSTM beats every baseline" + (f" ({basis})." if basis else "."))
    else:
        said = [f"beats {', '.join(groups['beats'])}"] if groups["beats"] else []
        said += [f"ties with {', '.join(groups['ties'])}"] if groups["ties"] else []
        said += [f"is beaten by {', '.join(groups['beaten by'])}"] if groups["beaten by"] else []
        lines.append(f"The LSTM {'; '.join(said)} on this task"
                     + (f" ({basis})." if basis else "."))
    return "\n".join(lines)
