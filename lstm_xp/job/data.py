"""Built-in data: the seed series, two real series, a text corpus; windows and splits.

Everything here is host-side NumPy (data preparation, not model math) and needs no
network: the real series are CSV files in ``lstm_xp/job/datasets`` (see its README for
sources and licences), the text is read from the running interpreter's standard library.
A user's own series comes from ``csv_series.read_series_csv``; the windows, splits and
scaler here serve it alike (README, "Your own series").
"""

from __future__ import annotations

import codecs
import csv
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .options import ConfigError

DATASETS = Path(__file__).with_name("datasets")


@dataclass(frozen=True)
class Series:
    """A univariate series. ``period``: its seasonal period in steps, or None.

    ``step``: a ``csv_series.TimeStep`` when the labels are regular times (it writes the
    labels that follow the last: ``step.after(labels[-1], n)``), else None; ``time_name``
    labels the time axis; ``info``: facts about where the values came from (a CSV file's
    name, path, sha256, column, filled values: ``csv_series.read_series_csv``);
    ``covariates``: other columns of the same file, name -> (N,) float64 values.
    """

    name: str
    values: np.ndarray          # (N,) float64
    labels: list                # (N,) time labels as strings ("1700", "1958-03", "x=-70.0")
    period: int | None
    unit: str
    step: object = None
    time_name: str = "time"
    info: dict = field(default_factory=dict)
    covariates: dict = field(default_factory=dict)


def seed_series(n: int = 800, noise_seed: int = 0) -> Series:
    """The series lstm-xp grew from: sin(x) + 0.1 * noise + exp((x + 20) * 0.05).

    x runs over [-70, 10) in steps of 0.1 (800 points); noise ~ N(0, 1), seeded. The sine
    repeats every 2*pi/0.1 = 62.8 steps, so the seasonal period is taken as 63.
    """
    x = -70.0 + 0.1 * np.arange(n)
    noise = np.random.default_rng(noise_seed).standard_normal(n)
    values = np.sin(x) + 0.1 * noise + np.exp((x + 20) * 0.05)
    return Series("seed", values, [f"x={v:.1f}" for v in x], period=63, unit="", time_name="x")


def _read_csv(filename: str):
    with open(DATASETS / filename, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [r[0] for r in rows], np.array([float(r[1]) for r in rows])


def sunspots() -> Series:
    """Yearly mean sunspot number 1700-2008 (NOAA, public domain); ~11-year cycle."""
    from .csv_series import TimeStep
    labels, values = _read_csv("sunspots.csv")
    return Series("sunspots", values, labels, period=11, unit="sunspots",
                  step=TimeStep("number", 1, "number"), time_name="year")


def co2() -> Series:
    """Monthly mean CO2 at Mauna Loa 1958-03..2001-12, ppm (SIO/CDIAC, public domain)."""
    from .csv_series import TimeStep
    labels, values = _read_csv("co2_monthly.csv")
    return Series("co2", values, labels, period=12, unit="ppm",
                  step=TimeStep("months", 1, "month"), time_name="month")


SERIES = {"seed": seed_series, "sunspots": sunspots, "co2": co2}


def load_series(name: str) -> Series:
    if name not in SERIES:
        raise ValueError(f"unknown series {name!r}; built-in series are {sorted(SERIES)}")
    return SERIES[name]()


# ------------------------------------------------------------------ windows
@dataclass
class Windows:
    """Forecasting examples: ``inputs[n]`` are the W values before ``targets[n]``, the H
    values that follow them.

    Attributes:
        inputs: (N, W) past values of the target.   targets: (N, H) the values that follow.
        index: (N,) position in the series of each example's first target (its forecast
            origin is the position before).
        extra: (N, W, F) the other input features over the same W steps (covariates, time
            features), F = 0 when there are none.
    """

    inputs: np.ndarray
    targets: np.ndarray
    index: np.ndarray
    extra: np.ndarray

    def __len__(self):
        return len(self.targets)

    def subset(self, which):
        return Windows(self.inputs[which], self.targets[which], self.index[which],
                       self.extra[which])


def make_windows(values: np.ndarray, window: int, horizon: int = 1,
                 extra: np.ndarray | None = None) -> Windows:
    """Every (W past values -> next H values) example of a series: N = n - W - H + 1.

    ``extra``: (n, F) other features of every position (None: F = 0); each example gets
    the rows of its W input steps.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if window < 1 or horizon < 1 or window + horizon > n:
        raise ValueError(f"window + horizon must be at most {n} (the series' length), with "
                         f"each >= 1; got window {window} and horizon {horizon}")
    count = n - window - horizon + 1
    idx = np.arange(window, window + count)
    inputs = np.lib.stride_tricks.sliding_window_view(values, window)[:count]
    targets = np.lib.stride_tricks.sliding_window_view(values[window:], horizon)[:count]
    extra = np.zeros((n, 0)) if extra is None else np.asarray(extra, dtype=np.float64)
    steps = np.lib.stride_tricks.sliding_window_view(extra, window, axis=0)[:count]
    return Windows(inputs.copy(), targets.copy(), idx, np.ascontiguousarray(
        steps.transpose(0, 2, 1)))


def split_windows(windows: Windows, bounds: dict) -> dict:
    """{part: the examples whose every target lies inside the part} for ``bounds`` from
    :func:`time_split`: no example's targets cross into the next part."""
    last = windows.index + windows.targets.shape[1] - 1
    return {part: windows.subset((windows.index >= lo) & (last < hi))
            for part, (lo, hi) in bounds.items()}


def time_split(n: int, fractions=(0.7, 0.15, 0.15)) -> dict:
    """Boundaries that cut positions 0..n-1 into train/val/test, in time order.

    Returns {"train": (0, a), "val": (a, b), "test": (b, n)} (half-open ranges).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    return {"train": (0, a), "val": (a, b), "test": (b, n)}


def max_window(n: int, fractions=(0.7, 0.15, 0.15), horizon: int = 1) -> int:
    """The longest window that leaves every part of an ``n``-value series at least one
    example of ``horizon`` targets (0 if none does): the training part must hold the window
    and the targets after it, the other parts ``horizon`` values each."""
    bounds = time_split(n, fractions)
    if any(hi - lo < horizon for lo, hi in bounds.values()):
        return 0
    return max(bounds["train"][1] - horizon, 0)


def min_length(window: int, fractions=(0.7, 0.15, 0.15), horizon: int = 1) -> int:
    """The fewest values a series needs so that ``window`` leaves every part an example."""
    n = window + 3 * horizon
    while max_window(n, fractions, horizon) < window:
        n += 1
    return n


class DeltaScaler:
    """Windows as changes from their own last value, in units of the typical step change.

        encoded input  = (window - window[-1]) / s        encoded target = (y - window[-1]) / s
        decoded        = window[-1] + s * output

    s is the standard deviation of one-step changes over the training part of the series
    only (no look-ahead). Working relative to the last value lets the network follow
    trends beyond the range it was trained on (the seed series and CO2 both grow).
    """

    def __init__(self, train_values: np.ndarray):
        steps = np.diff(np.asarray(train_values, dtype=np.float64))
        self.scale = float(np.std(steps)) or 1.0

    def encode_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """(N, W) -> (N, W, 1)."""
        return ((inputs - inputs[:, -1:]) / self.scale)[:, :, None]

    def encode_targets(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(N, H) -> (N, H)."""
        return (targets - inputs[:, -1:]) / self.scale

    def decode(self, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """(N, ...) network outputs -> (N, ...) forecasts in the series' units (every
        output of row n is relative to window n's last value)."""
        outputs = np.asarray(outputs, dtype=np.float64)
        last = inputs[:, -1].reshape((-1,) + (1,) * (outputs.ndim - 1))
        return last + self.scale * outputs


class Standardizer:
    """Columns as z-scores: (x - mean) / std, mean and std of the training part only (a
    constant column: std 1). Covariates are scaled by level, not relative to their last
    value like the target: what a covariate says is often in its level (a temperature, a
    price), and the target's encoding already carries the trend."""

    def __init__(self, train_columns: np.ndarray):
        train_columns = np.asarray(train_columns, dtype=np.float64)
        self.mean = train_columns.mean(axis=0)
        std = train_columns.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)

    def encode(self, columns: np.ndarray) -> np.ndarray:
        """(..., C) -> (..., C)."""
        return (np.asarray(columns, dtype=np.float64) - self.mean) / self.std


# --------------------------------------------------------------------- text
STDLIB_TEXT_FILES = ("textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "colorsys.py",
                     "shlex.py", "calendar.py", "difflib.py", "string.py", "queue.py",
                     "sched.py", "glob.py", "tabnanny.py", "pprint.py")


def stdlib_text(max_chars: int = 200_000) -> tuple[str, str]:
    """Python source from this interpreter's standard library, and where it came from.

    Returns (text, source description). The files are fixed (``STDLIB_TEXT_FILES``), so the
    text is the same for a given Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, used = [], []
    for name in STDLIB_TEXT_FILES:
        path = root / name
        if path.is_file():
            parts.append(path.read_text(encoding="utf-8"))
            used.append(name)
        if sum(len(p) for p in parts) >= max_chars:
            break
    if not parts:
        raise FileNotFoundError(f"no standard-library sources found under {root}; "
                                "pass a text file with --text PATH")
    return "".join(parts)[:max_chars], f"Python stdlib ({root}): {', '.join(used)}"


def check_encoding(encoding) -> None:
    """ConfigError unless ``encoding`` names a text encoding Python knows."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ConfigError("encoding", "{name} must be a text encoding Python knows (such as "
                          "'utf-8' or 'latin-1'), got {got!r}", got=encoding) from None


def read_text(path, max_chars: int | None = None, encoding: str = "utf-8") -> tuple[str, str]:
    """The text of the file at ``path`` (at most ``max_chars`` characters), and ``path``.

    The file is decoded strictly: a directory, a binary file (one holding a NUL byte) or
    bytes that are not valid ``encoding`` raise a ConfigError naming the file (and the
    byte offset), never a text with replacement characters in it.
    """
    check_encoding(encoding)
    path = Path(path)
    if path.is_dir():
        raise ConfigError("text", "{name} {path}: is a directory; pass a text file",
                          path=str(path))
    try:
        data = path.read_bytes()
    except OSError as err:            # missing, unreadable: the flag, the path, the reason
        denied = isinstance(err, PermissionError)
        raise ConfigError("text", "{name} {path}: {reason}; {advice}", path=str(path),
                          reason=err.strerror or str(err),
                          advice="check its permissions" if denied else "check the path"
                          ) from None
    nul = data.find(b"\0")
    # a NUL byte means binary in encodings that write ASCII as itself (UTF-8, Latin-1, ...);
    # in UTF-16/32 every ASCII character holds NULs
    if nul >= 0 and "a".encode(encoding) == b"a":
        raise ConfigError("text", "{name} {path}: looks like a binary file (a NUL byte at "
                          "byte offset {offset}), not text", path=str(path), offset=nul)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise ConfigError("text", "{name} {path}: is not valid {encoding} (byte "
                          "{byte} at byte offset {offset}); if the file uses another "
                          "encoding, pass it with {opt[encoding]}", path=str(path),
                          encoding=encoding, byte=data[err.start:err.start + 1],
                          offset=err.start) from None
    if max_chars:
        text = text[:max_chars]
    if len(text) < 100:
        raise ConfigError("text", "{name} {path}: needs at least 100 characters, found {n}",
                          path=str(path), n=len(text))
    return text, str(path)


class Vocabulary:
    """Characters <-> integer ids (sorted, so the mapping depends only on the character set)."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]!r}")
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def one_hot(ids: np.ndarray, size: int, dtype) -> np.ndarray:
    """(...,) int ids -> (..., size) one-hot rows."""
    out = np.zeros(ids.shape + (size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out
