"""A user's series from a CSV file: read once, validated once, every problem named by line.

    from lstm_xp.job.csv_series import read_series_csv
    s = read_series_csv("sales.csv", column="sales", time_column="month")
    s.values, s.labels, s.step.describe(), s.step.after(s.labels[-1], 3), s.info["sha256"]

The file has a header line naming its columns and is read with the standard library's
``csv`` module (comma-separated; a header without commas but with semicolons or tabs selects
that delimiter; UTF-8, a byte-order mark allowed). The target column is picked by name; with
none given, the file's only numeric column is taken (``info["picked"]`` says so). The
optional time column holds ISO dates or datetimes (``2031-07``, ``2031-07-01``,
``2031-07-01T12:00``, ``2031-07-01 12:00:30``) or plain numbers, all written one way, and
must increase at one regular step, which :class:`TimeStep` infers (calendar months for
``YYYY-MM`` and for dates that keep their day of month; a fixed duration otherwise; numbers:
their difference). The step labels forecasts (:meth:`TimeStep.after`) and suggests the
seasonal period (:attr:`TimeStep.period`).

Every problem raises a :class:`~lstm_xp.job.options.ConfigError` (a ValueError) naming the
file, the line as numbered in the file (the header is line 1) and the offending value:
an empty cell, a missing-value marker (``NA``, ``NaN``, ``null``, ...) or other text that is
not a number, a non-finite number, times that do not increase or not at a regular step
(both lines named), an unknown column (the columns listed). Missing values are refused
unless ``missing="interpolate"``, which fills gaps between two values linearly (gaps at
the start or the end are always refused) and counts them in ``info["filled"]``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .data import Series
from .options import ConfigError

MISSING_MODES = ("refuse", "interpolate")
# cells that spreadsheets, R and pandas write for "no value": missing, not malformed
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "nil", "-", ".", "?",
                             "#n/a"})
TIME_FORMS = "2031-07, 2031-07-01, 2031-07-01T12:00 or a plain number"

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2})(:\d{2})?")

# the seasonal period (in steps) that a step suggests, where one makes sense
_PERIODS = {("months", 1): 12, ("months", 3): 4, ("seconds", 86400): 7,
            ("seconds", 3600): 24}


# ------------------------------------------------------------------------------ time
@dataclass(frozen=True)
class TimeStep:
    """The regular step of a time column, and how its labels are written.

    ``kind``: "months" (``size`` calendar months), "seconds" (``size`` seconds) or "number"
    (``size`` units). ``form``: how a label is written: "month" (``2031-07``), "date"
    (``2031-07-01``), "minute" (``2031-07-01T12:00``), "second" (``...T12:00:30``) or
    "number" (with ``decimals`` digits after the point; ``sep`` joins date and clock).
    """

    kind: str
    size: float
    form: str
    decimals: int = 0
    sep: str = "T"

    def describe(self) -> str:
        """In words: "monthly", "quarterly", "yearly", "daily", "hourly", "every 15 minutes",
        "steps of 0.5"."""
        if self.kind == "number":
            return f"steps of {self._number(self.size)}"
        if self.kind == "months":
            named = {1: "monthly", 3: "quarterly", 12: "yearly"}
            return named.get(self.size) or (f"every {self.size // 12} years"
                                            if self.size % 12 == 0
                                            else f"every {self.size} months")
        for unit, seconds, single in (("day", 86400, "daily"), ("hour", 3600, "hourly"),
                                      ("minute", 60, "every minute"), ("second", 1,
                                                                       "every second")):
            if self.size % seconds == 0:
                n = self.size // seconds
                if unit == "day" and n == 7:
                    return "weekly"
                return single if n == 1 else f"every {n} {unit}s"
        raise AssertionError(self.size)           # sizes are whole seconds

    @property
    def period(self) -> int | None:
        """The seasonal period this step suggests (12 for monthly, 4 quarterly, 7 daily, 24
        hourly), or None where none makes sense (yearly, numbers, other steps)."""
        return _PERIODS.get((self.kind, self.size))

    def after(self, label: str, n: int) -> list:
        """The ``n`` labels that follow ``label`` (a label of this step's column), written
        the same way: ``after("2033-12", 2) == ["2034-01", "2034-02"]``."""
        if self.kind == "number":
            last = float(label)
            return [self._number(last + k * self.size) for k in range(1, n + 1)]
        if self.kind == "months":
            when = _parse_time(label)[1]
            year, month = (when if self.form == "month" else (when.year, when.month))
            out = []
            for k in range(1, n + 1):
                y, m = divmod(year * 12 + month - 1 + k * self.size, 12)
                if self.form == "month":
                    out.append(f"{y:04d}-{m + 1:02d}")
                else:           # the same day and clock time, in a later month
                    out.append(self._write(when.replace(year=y, month=m + 1)))
            return out
        when = _parse_time(label)[1]
        return [self._write(when + timedelta(seconds=k * self.size)) for k in range(1, n + 1)]

    def cycle(self) -> str | None:
        """The calendar cycle that times at this step go round, as time features can show
        it: "month of year" (monthly or quarterly steps), "day of week" (daily), "hour of
        day" (a whole fraction of a day: hourly, every 15 minutes, ...); None otherwise."""
        if self.kind == "months":
            return "month of year" if self.size in (1, 2, 3, 4, 6) else None
        if self.kind == "seconds":
            if self.size == 86400:
                return "day of week"
            if self.size < 86400 and 86400 % self.size == 0:
                return "hour of day"
        return None

    def time_features(self, labels) -> np.ndarray:
        """(len(labels), 2): sin and cos of the phase of each label's time in
        :meth:`cycle` (2 pi * month/12, weekday/7 or seconds since midnight/86400), so
        that the end of the cycle meets its start. Only for a step with a cycle."""
        cycle = self.cycle()
        if cycle is None:
            raise ValueError(f"times {self.describe()} go round no calendar cycle")
        phase = []
        for label in labels:
            when = _parse_time(label)[1]
            if cycle == "month of year":
                month = when[1] if self.form == "month" else when.month
                phase.append((month - 1) / 12)
            elif cycle == "day of week":
                phase.append(when.weekday() / 7)
            else:
                phase.append((when.hour * 3600 + when.minute * 60 + when.second) / 86400)
        angle = 2 * np.pi * np.array(phase)
        return np.stack([np.sin(angle), np.cos(angle)], axis=1)

    def _write(self, when: datetime) -> str:
        clock = {"date": None, "minute": "%H:%M", "second": "%H:%M:%S"}[self.form]
        return when.strftime("%Y-%m-%d" + ("" if clock is None else self.sep + clock))

    def _number(self, value: float) -> str:
        if self.decimals == 0 and float(value).is_integer():
            return str(int(value))
        return f"{value:.{self.decimals}f}" if self.decimals else f"{value:g}"


def _parse_time(text: str):
    """(form, value) of one time cell; value: (year, month), a datetime or a float.
    Raises ValueError (with no message) for anything else."""
    m = _MONTH.fullmatch(text)
    if m:
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise ValueError
        return "month", (year, month)
    if _DATE.fullmatch(text):
        return "date", datetime.strptime(text, "%Y-%m-%d")
    m = _DATETIME.fullmatch(text)
    if m:
        form = "second" if m.group(4) else "minute"
        return form, datetime.strptime(f"{m.group(1)} {m.group(3)}{m.group(4) or ''}",
                                       "%Y-%m-%d %H:%M" + (":%S" if m.group(4) else ""))
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    return "number", value


def _decimals(text: str) -> int:
    """Digits after the point in a plain number as written (0 for ``12`` or ``1e3``)."""
    if "e" in text.lower() or "." not in text:
        return 0
    return len(text.split(".", 1)[1])


def _months(form: str, value) -> int:
    year, month = value if form == "month" else (value.year, value.month)
    return year * 12 + month - 1


def _same_in_month(value: datetime) -> tuple:
    return value.day, value.hour, value.minute, value.second


def _plural(n, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _say_missing(cell: str) -> str:
    return "is empty" if cell == "" else f"is {cell!r}, a missing value"


def infer_step(cells: list, lines: list, where) -> TimeStep:
    """The regular step of a time column (its stripped ``cells``, on file ``lines``).

    ``where(line, template, **values)`` makes the ConfigError. Refuses cells that are
    neither ISO dates nor numbers, a mix of forms, times that do not increase, and a step
    that changes (naming both lines).
    """
    parsed = []
    for text, line in zip(cells, lines):
        if text == "":
            raise where(line, "the time cell is empty")
        try:
            parsed.append(_parse_time(text))
        except (ValueError, OverflowError):
            raise where(line, "time {got!r} is neither a date or datetime ({forms}) nor a "
                        "finite number", got=text, forms=TIME_FORMS.rsplit(" or", 1)[0]
                        ) from None
        if parsed[-1][0] != parsed[0][0]:
            raise where(line, "time {got!r} is written differently from {first!r} on line "
                        "{first_line}; write every time one way", got=text, first=cells[0],
                        first_line=lines[0])
    form = parsed[0][0]
    values = [v for _, v in parsed]
    if len(values) < 2:
        raise where(lines[0], "one time is not enough to infer the step; the series needs "
                    "more values")
    if form == "number":
        pos, unit = np.array(values), "number"
    elif form == "month" or len({_same_in_month(v) for v in values}) == 1:
        pos, unit = np.array([_months(form, v) for v in values], dtype=np.int64), "months"
    else:
        pos = np.array([int((v - values[0]).total_seconds()) for v in values], dtype=np.int64)
        unit = "seconds"
    diffs = np.diff(pos)
    step = diffs[0]

    def amount(d) -> str:
        if unit == "number":
            return f"{d:g}"
        if unit == "months":
            return _plural(int(d), "month")
        for name, seconds in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if d % seconds == 0:
                return _plural(int(d // seconds), name)

    tolerance = 1e-6 * abs(step) if unit == "number" else 0
    for k, d in enumerate(diffs):
        later = dict(got=cells[k + 1], before=cells[k], before_line=lines[k])
        if d <= 0:
            raise where(lines[k + 1], "time {got!r} does not come after {before!r} on line "
                        "{before_line}; times must increase at a regular step", **later)
        if abs(d - step) > tolerance:
            raise where(lines[k + 1], "time {got!r} comes {d} after {before!r} on line "
                        "{before_line}, but the step is {step} (lines {l0} to {l1}); times "
                        "must increase at a regular step", d=amount(d), step=amount(step),
                        l0=lines[0], l1=lines[1], **later)
    if unit == "number":
        decimals = max(_decimals(c) for c in cells)
        size = round(float(step), decimals) if decimals else float(step)
        return TimeStep("number", size, "number", decimals)
    return TimeStep(unit, int(step), form, sep="T" if "T" in cells[0] else " ")


# ----------------------------------------------------------------------------- cells
def _number(text: str):
    """A float, None for a missing-value marker; raises ValueError for other text."""
    if text.lower() in MISSING_MARKERS:
        return None
    return float(text)


def _is_numeric(cells) -> bool:
    """Whether a column holds numbers: its first cell that is not missing is one (a bad
    cell further down is then reported by its line, not taken as a column of text)."""
    for text in cells:
        try:
            if _number(text) is not None:
                return True
        except ValueError:
            return False
    return False


def _is_time(cells) -> bool:
    try:
        return all(_parse_time(c)[0] != "number" for c in cells)
    except (ValueError, OverflowError):
        return False


# ------------------------------------------------------------------------------ file
def read_series_csv(path, column: str | None = None, time_column: str | None = None,
                    missing: str = "refuse", covariates=()) -> Series:
    """The series in ``column`` of the CSV file at ``path``, validated.

    Args:
        column: the target column's name in the header; None takes the file's only
            numeric column (an error if it has several or none).
        time_column: the column of times (ISO dates/datetimes or numbers); None uses a
            column whose every cell is an ISO date or datetime if the file has exactly one,
            and else labels values by their position (1, 2, ...).
        missing: "refuse" (the default: an empty cell or NA is an error) or "interpolate"
            (gaps between two values filled linearly; gaps at the start or end refused).
        covariates: names of other columns to read alongside, validated like the target
            (``Series.covariates``); neither the target nor the time column.

    Returns a :class:`~lstm_xp.job.data.Series` named after the column, whose ``labels``
    are the times as written, ``step`` the :class:`TimeStep` (None without times),
    ``period`` the step's seasonal period, and ``info`` the facts a run records: file,
    path, sha256, column, time_column, picked (how the column was chosen), filled,
    filled_lines, first_line, last_line.

    Raises:
        ConfigError (a ValueError) naming the file, the line and the value; OSError-based
        ConfigError for a missing or unreadable file.
    """
    return parse_series_csv(read_bytes(path), path, column, time_column, missing, covariates)


def read_bytes(path) -> bytes:
    """The bytes of the file at ``path``; a ConfigError naming it (a directory, a missing
    or unreadable file) otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError("series", "{name} {path}: is a directory; pass a CSV file",
                          path=str(path))
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError("series", "{name} {path}: {reason}; check the path", path=str(path),
                          reason=err.strerror or str(err)) from None


def sha256_of(path) -> str:
    """The sha256 of the file at ``path``, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_series_csv(data: bytes, path, column: str | None = None,
                     time_column: str | None = None, missing: str = "refuse",
                     covariates=()) -> Series:
    """:func:`read_series_csv` of a file's bytes ``data``; ``path`` names it in messages
    (as given) and in ``info`` (resolved)."""
    if missing not in MISSING_MODES:
        raise ConfigError("missing", "{name} must be one of {choices}, got {got!r}",
                          choices=MISSING_MODES, got=missing)
    path = Path(path)
    shown = str(path)

    def fail(template: str, option: str = "series", **values):
        """ConfigError "<--series> <path>: <template>"; user text goes in ``values``."""
        return ConfigError(option, "{name} {path}: " + template, path=shown, **values)

    def where(line: int, template: str, **values):
        return fail("line {line}: " + template, line=line, **values)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise where(data[:err.start].count(b"\n") + 1, "is not valid UTF-8 (byte {byte} at "
                    "byte offset {offset}); save the file as UTF-8",
                    byte=data[err.start:err.start + 1], offset=err.start) from None
    if "\0" in text:
        raise where(text[:text.index("\0")].count("\n") + 1, "holds a NUL byte: this looks "
                    "like a binary file, not CSV text")
    first = text.split("\n", 1)[0]
    delimiter = next((d for d in ",;\t" if d in first), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, lines, end = [], [], 0
    try:
        for row in reader:
            rows.append([c.strip() for c in row])
            lines.append(end + 1)              # a quoted cell may span lines: its first
            end = reader.line_num
    except csv.Error as err:
        raise where(end + 1, "is not valid CSV ({reason})", reason=str(err)) from None
    while rows and not any(rows[-1]):         # blank lines at the end of the file
        rows.pop()
        lines.pop()
    if not rows:
        raise fail("is empty; it needs a header line naming its columns, then one line per "
                   "value")
    header, rows, lines = rows[0], rows[1:], lines[1:]
    if not rows:
        raise fail("has a header (line 1) but no values after it")
    width = len(header)
    for row, line in zip(rows, lines):
        if not any(row):
            row[:] = [""] * width            # a blank line: every cell of it is empty
        elif len(row) != width:
            raise where(line, "has {cells}, but the header (line 1) names {columns}",
                        cells=_plural(len(row), "cell"), columns=_plural(width, "column"))
    listed = ", ".join(header)

    def index_of(name, option):
        if name not in header:
            raise ConfigError(option, "{name} {got!r} is not a column of {path}; its columns "
                              "are: {listed}", got=name, path=shown, listed=listed)
        if header.count(name) > 1:
            raise fail("the header (line 1) names the column {got!r} more than once; rename "
                       "all but one", got=name)
        return header.index(name)

    cols = list(zip(*rows))
    tcol = None if time_column is None else index_of(time_column, "time_column")
    col, picked = (None, None) if column is None else (index_of(column, "column"), "named")
    if col is not None and col == tcol:
        raise ConfigError("column", "{name} and {opt[time_column]} both name the column "
                          "{got!r}", got=column)
    if tcol is None:             # the file's only column of ISO dates holds the times
        dated = [k for k, c in enumerate(cols) if k != col and _is_time(c)]
        tcol = dated[0] if len(dated) == 1 else None
    if col is None:
        numeric = [k for k, c in enumerate(cols) if k != tcol and header[k] not in covariates
                   and _is_numeric(c)]
        if len(numeric) != 1:
            some = ("no numeric column" if not numeric else
                    f"{len(numeric)} numeric columns ({', '.join(header[k] for k in numeric)})")
            raise ConfigError("column", "{opt[series]} {path} has {some}; choose the column "
                              "to learn with {name} (its columns are: {listed})",
                              path=shown, some=some, listed=listed)
        col, picked = numeric[0], "the only numeric column"
    name = header[col]

    def numbers_in(col: int):
        """(values of column ``col``, positions filled by interpolation), validated."""
        name = header[col]
        values = np.empty(len(rows))
        gaps = []
        for k, (row, line) in enumerate(zip(rows, lines)):
            cell = row[col]
            try:
                value = _number(cell)
            except ValueError:
                raise where(line, "{got!r} in column {col!r} is not a number", got=cell,
                            col=name) from None
            if value is None:
                if missing == "refuse":
                    raise where(line, "the cell in column {col!r} {what}; fill it, or pass "
                                "{opt[missing]} interpolate to fill gaps between two values "
                                "linearly", col=name, what=_say_missing(cell))
                gaps.append(k)
                value = math.nan
            elif not math.isfinite(value):
                raise where(line, "{got!r} in column {col!r} is not a finite number",
                            got=cell, col=name)
            values[k] = value
        if gaps:
            known = np.flatnonzero(~np.isnan(values))
            for k in gaps:
                if len(known) == 0 or k < known[0] or k > known[-1]:
                    raise where(lines[k], "the cell in column {col!r} {what} at the {at} of "
                                "the series; {opt[missing]} interpolate fills only gaps "
                                "between two values: remove the line, or give it a value",
                                col=name, what=_say_missing(rows[k][col]),
                                at="start" if len(known) == 0 or k < known[0] else "end")
            values[gaps] = np.interp(gaps, known, values[known])
        return values, gaps

    values, gaps = numbers_in(col)
    extra, extra_gaps = {}, {}
    for cov in covariates:
        k = index_of(cov, "covariates")
        if k == col:
            raise ConfigError("covariates", "{name} names {got!r}, the column to learn; "
                              "covariates are the other columns whose past helps forecast "
                              "it", got=cov)
        if k == tcol:
            raise ConfigError("covariates", "{name} names {got!r}, the time column; "
                              "{opt[time_features]} turns times into features", got=cov)
        extra[cov], filled = numbers_in(k)
        if filled:
            extra_gaps[cov] = [lines[j] for j in filled]

    step, time_name = None, "position (no time column)"
    labels = [str(k) for k in range(1, len(rows) + 1)]
    if tcol is not None:
        labels = [row[tcol] for row in rows]
        step = infer_step(labels, lines, where)
        time_name = f"{header[tcol]} ({step.describe()})"
    info = {"file": path.name, "path": str(path.resolve()),
            "sha256": hashlib.sha256(data).hexdigest(), "column": name, "picked": picked,
            "time_column": None if tcol is None else header[tcol],
            "time_column_picked": tcol is not None and time_column is None,
            "step": None if step is None else step.describe(),
            "filled": len(gaps), "filled_lines": [lines[k] for k in gaps],
            "first_line": lines[0], "last_line": lines[-1], "covariates": list(extra),
            "covariates_filled_lines": extra_gaps}
    return Series(name, values, labels, period=None if step is None else step.period,
                  unit="", step=step, time_name=time_name, info=info, covariates=extra)


__all__ = ["read_series_csv", "parse_series_csv", "read_bytes", "sha256_of", "TimeStep",
           "infer_step", "MISSING_MODES", "MISSING_MARKERS"]
