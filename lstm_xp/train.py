"""The training loop used by ``scripts/train.py`` and by research code.

    from lstm_xp.train import TrainConfig, train, resume, load_run
    result = train(TrainConfig(task="sunspots", epochs=40), "runs/sunspots")
    result.metrics["test_rmse"], result.metrics["baselines"]
    result = resume("runs/sunspots", epochs=80)      # continue where it stopped
    cfg, task, model = load_run("runs/sunspots")    # best parameters, ready to predict

A run directory receives ``config.json``, ``checkpoint.npz`` (after every epoch, atomically),
``metrics.json``, ``loss_curve.png`` and, for series, ``forecast.png`` (chars: ``samples.txt``).
"""

from __future__ import annotations

import json
import math
import numbers
import platform
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from backends import get_backend

from .arrays import finite_checks, positive_int
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .optim import SGD, Adam, global_grad_norm, scale_grads
from .tasks import SERIES_TASKS, TASKS, build_task

# Defaults per task, chosen on the validation split (never on test): see README "Results".
TASK_DEFAULTS = {
    "seed": dict(epochs=50, batch_size=32, hidden_size=32, lr=2e-3, window=32),
    "sunspots": dict(epochs=60, batch_size=16, hidden_size=32, lr=5e-3, window=24),
    "co2": dict(epochs=80, batch_size=16, hidden_size=32, lr=5e-3, window=36),
    "chars": dict(epochs=10, batch_size=32, hidden_size=128, lr=5e-3, seq_len=64,
                  batches_per_epoch=100),
}
OPTIMIZERS = ("adam", "sgd")
TIE_MARGIN = 0.05     # scores within 5 % are a tie: the seed-to-seed spread measured on `seed`
ON_NONFINITE = ("stop", "skip")


class TrainingDiverged(RuntimeError):
    """A step produced a non-finite loss or gradient (the message names the step)."""


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` fields take the task's default (TASK_DEFAULTS)."""

    task: str = "seed"
    device: str = "cpu"
    dtype: str = "float32"
    epochs: int | None = None
    batch_size: int | None = None
    hidden_size: int | None = None
    num_layers: int = 1
    lr: float | None = None
    optimizer: str = "adam"
    momentum: float = 0.9          # sgd only
    lr_decay: float = 0.0          # sgd only: lr / (1 + lr_decay * step)
    clip: float | None = 1.0       # global gradient-norm limit; None or 0: no clipping
    window: int | None = None      # series tasks: past values per forecast
    seq_len: int | None = None     # chars: characters per training sequence
    batches_per_epoch: int | None = None   # chars, random windows
    bptt: int | None = None        # chars: stream the text in chunks of this many characters
    text: str | None = None        # chars: a text file instead of the stdlib sources
    max_chars: int = 200_000       # chars
    seed: int = 0
    on_nonfinite: str = "stop"     # "stop" or "skip" a step whose loss/gradient is not finite

    def resolved(self) -> TrainConfig:
        """A copy with task defaults filled in, after checking every field."""
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        filled = {k: v for k, v in TASK_DEFAULTS[self.task].items() if getattr(self, k) is None}
        cfg = replace(self, **filled)
        for name in ("epochs", "batch_size", "hidden_size", "num_layers", "max_chars"):
            setattr(cfg, name, positive_int(name, getattr(cfg, name)))
        _require(_is_real(cfg.lr) and cfg.lr > 0, "lr", "a number > 0", cfg.lr)
        _require(_is_real(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum",
                 "a number in [0, 1)", cfg.momentum)
        _require(_is_real(cfg.lr_decay) and cfg.lr_decay >= 0, "lr_decay", "a number >= 0",
                 cfg.lr_decay)
        _require(cfg.clip is None or (_is_real(cfg.clip) and cfg.clip >= 0), "clip",
                 "a number >= 0 or None", cfg.clip)
        _require(isinstance(cfg.seed, (int, np.integer)) and not isinstance(cfg.seed, bool)
                 and cfg.seed >= 0, "seed", "an integer >= 0", cfg.seed)
        _require(cfg.device in ("cpu", "gpu", "auto"), "device", "'cpu', 'gpu' or 'auto'",
                 cfg.device)
        _require(cfg.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'", cfg.dtype)
        _require(cfg.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", cfg.optimizer)
        _require(cfg.on_nonfinite in ON_NONFINITE, "on_nonfinite", f"one of {ON_NONFINITE}",
                 cfg.on_nonfinite)
        if cfg.task in SERIES_TASKS:
            cfg.window = positive_int("window", cfg.window)
            _require(cfg.bptt is None, "bptt", "None for a series task (it applies to chars)",
                     cfg.bptt)
        else:
            for name in ("seq_len", "batches_per_epoch"):
                setattr(cfg, name, positive_int(name, getattr(cfg, name)))
            if cfg.bptt is not None:
                cfg.bptt = positive_int("bptt", cfg.bptt)
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}")
        return cls(**d)


def _is_real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _require(ok: bool, name: str, expected: str, got) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {got!r}")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    history: list
    model: object
    task: object


def make_optimizer(cfg: TrainConfig, layers):
    if cfg.optimizer == "sgd":
        return SGD(layers, lr=cfg.lr, momentum=cfg.momentum, decay=cfg.lr_decay)
    return Adam(layers, lr=cfg.lr)


def train(cfg: TrainConfig, run_dir, *, progress: bool = True, echo=print) -> RunResult:
    """Train from scratch into ``run_dir`` (created; an existing checkpoint there is an error)."""
    cfg = cfg.resolved()
    run_dir = Path(run_dir)
    if (run_dir / "checkpoint.npz").exists():
        raise FileExistsError(f"{run_dir} already holds a run; resume it or choose another --out")
    return _run(cfg, run_dir, None, progress, echo)


def resume(run_dir, *, epochs: int | None = None, device: str | None = None,
           progress: bool = True, echo=print) -> RunResult:
    """Continue the run in ``run_dir`` from its last saved epoch, up to ``epochs`` in total."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / "checkpoint.npz")
    cfg = TrainConfig.from_dict(ckpt.config)
    cfg = replace(cfg, epochs=epochs or cfg.epochs, device=device or cfg.device).resolved()
    return _run(cfg, run_dir, ckpt, progress, echo)


def load_run(run_dir, *, device: str | None = None, which: str = "best"):
    """(config, task, model) of a saved run, with its ``which`` ("best" or "last") parameters."""
    ckpt = load_checkpoint(Path(run_dir) / "checkpoint.npz")
    cfg = TrainConfig.from_dict(ckpt.config)
    cfg = replace(cfg, device=device or cfg.device).resolved()
    task = build_task(cfg)
    _check_same_data(ckpt, task, run_dir)
    model = task.build_model(cfg)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    model.load_state_dict(ckpt.best if which == "best" and ckpt.best else ckpt.model)
    return cfg, task, model


def _check_same_data(ckpt, task, run_dir) -> None:
    """Refuse to continue or load a run whose data has changed (vocabulary, text, series)."""
    saved, now = ckpt.extra.get("data"), task.describe()
    changed = sorted(k for k in set(saved or {}) | set(now)
                     if k != "source" and saved is not None and saved.get(k) != now.get(k))
    if changed:
        raise ValueError(f"the data of the run in {run_dir} has changed since it was trained "
                         f"(differs in: {', '.join(changed)}); its parameters would not fit it")


def _run(cfg: TrainConfig, run_dir: Path, ckpt, progress: bool, echo) -> RunResult:
    get_backend(cfg.device)          # fail first, with the backend's one-sentence reason
    tqdm = _tqdm() if progress else None
    task = build_task(cfg)
    model = task.build_model(cfg)
    layers = model.optimizable()
    optimizer = make_optimizer(cfg, layers)
    rng = np.random.default_rng([cfg.seed, 1])       # batch order; the model init uses cfg.seed
    history, best_val, best, seconds = [], math.inf, None, 0.0
    if ckpt is not None:
        _check_same_data(ckpt, task, run_dir)
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optim)
        rng.bit_generator.state = ckpt.rng
        try:
            history = ckpt.extra["history"]
            best_val, seconds = ckpt.extra["best_val"], ckpt.extra["wall_seconds"]
        except KeyError as err:
            raise CheckpointError(f"{run_dir / 'checkpoint.npz'} lacks the training history "
                                  f"({err}); it was not written by lstm_xp.train") from None
        best = ckpt.best or None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    start_epoch = len(history)
    n_params = sum(layer.num_params() for layer in layers)
    echo(f"task {cfg.task}: {_describe_line(task)}")
    echo(f"model: LSTM({cfg.num_layers} x {cfg.hidden_size}) + linear head, {n_params} parameters, "
         f"{cfg.dtype} on {cfg.device}; {cfg.optimizer} lr={cfg.lr}; run dir {run_dir}")
    if start_epoch:
        echo(f"resuming after epoch {start_epoch} of {cfg.epochs}")
    metric = task.metric
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        train_loss, skipped = _train_epoch(task, model, layers, optimizer, rng, cfg, epoch,
                                           tqdm, run_dir)
        val = task.evaluate(model, "val")
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": train_loss, f"val_{metric}": val,
                        "skipped_steps": skipped, "seconds": round(seconds, 3)})
        if val < best_val:
            best_val, best = val, model.state_dict()
        save_checkpoint(run_dir / "checkpoint.npz", Checkpoint(
            epoch=epoch + 1, config=asdict(cfg), rng=rng.bit_generator.state,
            model=model.state_dict(), optim=optimizer.state_dict(), best=best or {},
            extra={"history": history, "best_val": best_val, "wall_seconds": seconds,
                   "data": task.describe()}))
        note = f", {skipped} non-finite steps skipped" if skipped else ""
        echo(f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {train_loss:.5g}  "
             f"val {metric} {val:.5g}{' *' if best_val == val else ''}  ({seconds:.1f} s){note}")
    return _finish(cfg, run_dir, task, model, best, history, seconds, echo)


def _train_epoch(task, model, layers, optimizer, rng, cfg, epoch, tqdm, run_dir):
    bar = None
    if tqdm is not None:
        bar = tqdm(total=task.steps_per_epoch(cfg), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", leave=False, dynamic_ncols=True)
    total, count, skipped = 0.0, 0, 0
    for step, (x, target) in enumerate(task.batches(rng, cfg), 1):
        # the step's own arrays (gradients, carried state) are checked here, as one verdict
        # on the loss and the gradient norm, not by the input checks of each layer call
        with finite_checks(False):
            loss = task.train_step(model, x, target)
        xp = model.backend.xp                # loss and gradient norm in one transfer
        value, norm = (float(v) for v in model.backend.to_numpy(
            xp.stack([loss, global_grad_norm(layers)])))
        if not (math.isfinite(value) and math.isfinite(norm)):
            if cfg.on_nonfinite == "stop":
                if bar is not None:
                    bar.close()
                kept = (f"the last good checkpoint ({run_dir / 'checkpoint.npz'}, after epoch "
                         f"{epoch}) is unchanged" if epoch else "no checkpoint was written yet")
                raise TrainingDiverged(
                    f"epoch {epoch + 1}, step {step}: the loss is {value} and the gradient norm "
                    f"{norm}; training stopped and {kept}. Lower --lr, set --clip, or pass "
                    f"--on-nonfinite skip to skip such steps.")
            skipped += 1
            if hasattr(task, "carry"):      # a poisoned carried state would spread
                task.carry.reset()
        else:
            if cfg.clip and norm > cfg.clip:     # clip_grad_norm, with the norm already known
                scale_grads(layers, cfg.clip / norm)
            optimizer.step()
            total += value
            count += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(count, 1):.4g}")
    if bar is not None:
        bar.close()
    if count == 0:
        raise TrainingDiverged(f"epoch {epoch + 1}: every step was non-finite and skipped")
    return total / count, skipped


def _finish(cfg, run_dir, task, model, best, history, seconds, echo) -> RunResult:
    if best:
        model.load_state_dict(best)
    metric = task.metric
    score = task.evaluate(model, "test")
    baselines = task.baselines()
    verdict = {k: _verdict(score, v) for k, v in baselines.items()}
    best_epoch = min(history, key=lambda h: h[f"val_{metric}"])["epoch"] if history else None
    metrics = {
        "task": cfg.task, "device": model.backend.name, "dtype": cfg.dtype,
        f"test_{metric}": score, "metric": metric, "baselines": baselines,
        "lstm_beats": sorted(k for k, v in verdict.items() if v == "beats"),
        "ties": sorted(k for k, v in verdict.items() if v == "ties"),
        "beaten_by": sorted(k for k, v in verdict.items() if v == "beaten by"),
        "tie_margin": TIE_MARGIN,
        "epochs": len(history), "best_epoch": best_epoch, "wall_seconds": round(seconds, 3),
        "parameters": sum(layer.num_params() for layer in model.optimizable()),
        "data": task.describe(),
        "versions": {"python": platform.python_version(), **model.backend.describe()},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _write_figures(cfg, run_dir, task, model, history, baselines)
    echo(_summary(metric, score, baselines, verdict))
    return RunResult(run_dir, metrics, history, model, task)


def _write_figures(cfg, run_dir, task, model, history, baselines) -> None:
    from . import plots
    if history:
        plots.loss_curve(history, task.metric, run_dir / "loss_curve.png")
    if cfg.task in SERIES_TASKS:
        test = task.split["test"]
        baseline = task.baseline_forecasts()
        plots.forecast_vs_actual(
            [task.series.labels[i] for i in test.index], test.targets,
            {"lstm": task.predict(model, test.inputs), "persistence": baseline["persistence"],
             "linear_ar": baseline["linear_ar"]},
            f"{cfg.task}: one-step-ahead forecasts on the test span", run_dir / "forecast.png")
    else:
        prime = "def " if set("def ") <= set(task.vocab.chars) else task.vocab.chars[0]
        sample = task.sample(model, prime, 400, 0.8, np.random.default_rng(cfg.seed))
        (run_dir / "samples.txt").write_text(sample + "\n")


def _verdict(score: float, baseline: float) -> str:
    """How the LSTM's score compares with a baseline's (lower is better)."""
    if score < baseline * (1 - TIE_MARGIN):
        return "beats"
    if baseline < score * (1 - TIE_MARGIN):
        return "beaten by"
    return "ties"


def _summary(metric, score, baselines, verdict) -> str:
    width = max(len(k) for k in list(baselines) + ["lstm"]) + 2
    notes = {"beats": "", "ties": f"   <- a tie (within {TIE_MARGIN:.0%})",
             "beaten by": "   <- does better than the LSTM"}
    lines = [f"test {metric} (lower is better), same test points for every model:",
             f"  {'lstm':<{width}}{score:.5g}"]
    lines += [f"  {name:<{width}}{value:.5g}{notes[verdict[name]]}"
              for name, value in baselines.items()]
    groups = {v: [k for k in baselines if verdict[k] == v] for v in notes}
    if len(groups["beats"]) == len(baselines):
        lines.append("The LSTM beats every baseline.")
    else:
        said = [f"beats {', '.join(groups['beats'])}"] if groups["beats"] else []
        said += [f"ties with {', '.join(groups['ties'])}"] if groups["ties"] else []
        said += [f"is beaten by {', '.join(groups['beaten by'])}"] if groups["beaten by"] else []
        lines.append(f"The LSTM {'; '.join(said)} on this task.")
    return "\n".join(lines)


def _describe_line(task) -> str:
    d = task.describe()
    if "series" in d:
        return (f"{d['points']} values, window {d['window']}, train/val/test examples "
                f"{d['train_examples']}/{d['val_examples']}/{d['test_examples']}")
    return (f"{d['characters']} characters ({d['vocabulary']} distinct) from {d['source']}")


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("the progress bar needs tqdm: pip install 'lstm-xp[train]' "
                          "(or pass progress=False)") from None
    return tqdm
