"""Checkpoints: one versioned ``.npz`` file, written atomically.

Format (version 1), a NumPy ``.npz`` archive readable with ``allow_pickle=False``:

    meta              0-d unicode array: JSON {"format": "lstm-xp-checkpoint", "version": 1,
                      "epoch", "config", "rng" (NumPy bit-generator state), "extra"}
    model/<name>      current parameters, e.g. model/lstm.weight_ih_l0
    best/<name>       parameters of the best validation epoch (optional)
    optim/<key>       optimizer state (step count and per-parameter buffers)

A save writes a temporary file beside the target, flushes it to disk and renames it over
the target, so an interrupted save leaves the previous checkpoint as it was. SIGINT and
SIGTERM wait until the save is over (they are blocked meanwhile, where the platform allows),
so even their default actions find either the old file or the new one, and no temporary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "lstm-xp-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable lstm-xp checkpoint (the message says why)."""


@dataclass
class Checkpoint:
    epoch: int
    config: dict
    rng: dict
    model: dict
    optim: dict
    best: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def save_checkpoint(path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "epoch": ckpt.epoch, "config": ckpt.config,
            "rng": ckpt.rng, "extra": ckpt.extra}
    arrays = {"meta": np.array(json.dumps(meta))}
    for prefix, store in (("model", ckpt.model), ("best", ckpt.best), ("optim", ckpt.optim)):
        for key, value in store.items():
            arrays[f"{prefix}/{key}"] = np.asarray(value)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _stop_signals_deferred():
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_directory(path.parent)        # make the rename itself durable
        finally:
            if tmp.exists():
                tmp.unlink()
    return path


@contextlib.contextmanager
def _stop_signals_deferred():
    """SIGINT and SIGTERM blocked for the duration (delivered right after it), on platforms
    with ``pthread_sigmask`` and in the main thread, where Python's handlers run."""
    stops = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:                          # e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: truncated/corrupted file, a foreign file, or a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    unreadable = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] != b"PK" and magic != b"\x93NUM":
        raise CheckpointError(f"{path} is not an lstm-xp checkpoint (not a .npz archive)")
    try:
        archive = np.load(path, allow_pickle=False)
    except unreadable as err:
        raise CheckpointError(f"{path} is not an lstm-xp checkpoint, or is truncated or "
                              f"corrupted ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} is not an lstm-xp checkpoint (a bare .npy array)")
    stores = {"model": {}, "best": {}, "optim": {}}
    with archive:
        if "meta" not in archive.files:
            raise CheckpointError(f"{path} is not an lstm-xp checkpoint (no 'meta' entry)")
        try:
            meta = json.loads(str(archive["meta"]))
            for name in archive.files:
                prefix, _, key = name.partition("/")
                if prefix in stores:
                    stores[prefix][key] = archive[name]
        except unreadable as err:
            raise CheckpointError(f"{path} is truncated or corrupted ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lstm-xp checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {meta.get('version')}; "
                              f"this lstm-xp reads version {VERSION}")
    missing = sorted({"epoch", "config", "rng"} - set(meta))
    if missing:
        raise CheckpointError(f"{path} is damaged: its meta entry lacks {missing}")
    return Checkpoint(epoch=int(meta["epoch"]), config=meta["config"], rng=meta["rng"],
                      model=stores["model"], optim=stores["optim"], best=stores["best"],
                      extra=meta.get("extra", {}))
