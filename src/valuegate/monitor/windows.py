"""Production rows in, windows out: reading a CSV/Parquet file or the prediction log of
`valuegate serve`, joining labels that arrive later (by id), and cutting windows by the
time column or by row count. Every problem is a DataError naming the file, the column or
the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuegate.errors import DataError

LOG_SUFFIXES = (".sqlite", ".sqlite3", ".db")
LOG_TIME = "ts"  # the prediction log's time column: unix seconds
LOG_ID = "request_id"
MAX_WINDOWS = 1000


@dataclass
class Window:
    """One window: its label (e.g. '2017', '2024-03', 'rows 1-10000'), the positions of its
    rows in the input frame (ascending), and its time bounds when windows are by time."""

    label: str
    rows: np.ndarray
    start: Any = None
    end: Any = None


def is_log(path: str | Path) -> bool:
    return Path(path).suffix.lower() in LOG_SUFFIXES


def read_log(path: Path, model_version: str | None) -> pd.DataFrame:
    """The rows of `model_version` in the prediction log, as a typed frame
    (`serving.log.read_log_frame`: ts, request_id, model_version, score, decision,
    expected_value, one column per input feature). Rows scored by another version are left
    out (their scores come from another model); a log that holds none of this version's
    rows is refused by the reader, naming the versions it holds."""
    from valuegate.serving.log import read_log_frame

    return read_log_frame(path, model_version=model_version)


def read_rows(path: str | Path, what: str = "monitor.input") -> pd.DataFrame:
    """A CSV or Parquet file of production rows (every column; CSV missing-value markers
    as the training file was read)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path}: file not found.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            if path.stat().st_size == 0:
                raise DataError(f"{what} {path} is empty: a CSV needs a header row.")
            frame = pd.read_csv(path, low_memory=False)
        else:
            raise DataError(
                f"{what} {path}: give a .csv, .parquet or prediction log "
                f"({', '.join(LOG_SUFFIXES)}) file (got {suffix or 'no suffix'})."
            )
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path}: cannot read it: {exc}") from None
    return frame


def label_vector(target: pd.Series, task: str, positive_label: Any) -> np.ndarray:
    """Labels (n,) float: 1/0 (binary, 1 = the positive label) or the target (regression);
    NaN where the label is missing (not arrived yet)."""
    missing = target.isna().to_numpy()
    if task == "binary":
        y = (target.astype(str) == str(positive_label)).to_numpy(dtype=float)
    else:
        # copy: pandas may hand back a read-only view of a float column (copy-on-write)
        y = pd.to_numeric(target, errors="coerce").to_numpy(dtype=float, copy=True)
    y[missing] = np.nan
    return y


def join_labels(
    frame: pd.DataFrame,
    labels: pd.DataFrame,
    id_column: str,
    target: str,
    where: str,
) -> pd.Series:
    """The label of each production row (n,), joined by `id_column`; NaN where none has
    arrived. Refuses labels without the columns, ids given twice, and ids that match no
    production row (labels for rows this input does not hold: the wrong file, or ids
    that changed)."""
    for column, role in ((id_column, "the id column"), (target, "the target column")):
        if column not in labels.columns:
            raise DataError(
                f"{where}: lacks {role} {column!r}; it has {[str(c) for c in labels.columns][:20]}."
            )
    if id_column not in frame.columns:
        raise DataError(
            f"monitor.input lacks the id column {id_column!r} that labels are joined by; set "
            "monitor.id_column to the column that identifies a row in both files."
        )
    ids = labels[id_column].astype(str)
    twice = ids[ids.duplicated()].unique()
    if len(twice):
        raise DataError(
            f"{where}: {len(twice)} id(s) in column {id_column!r} have more than one label, "
            f"e.g. {list(twice[:5])}: keep one label per id."
        )
    known = set(frame[id_column].astype(str))
    unknown = ids[~ids.isin(known)]
    if len(unknown):
        raise DataError(
            f"{where}: {len(unknown)} of {len(ids)} label id(s) in column {id_column!r} match "
            f"no row of monitor.input, e.g. {list(unknown[:5])}: labels of other rows (the "
            "wrong file, or ids that changed)."
        )
    mapping = pd.Series(labels[target].to_numpy(), index=ids.to_numpy())
    return pd.Series(frame[id_column].astype(str).map(mapping).to_numpy(), index=frame.index)


def _time_values(column: pd.Series, name: str, from_log: bool) -> pd.Series:
    if from_log:
        return pd.to_datetime(column, unit="s", utc=True)
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column
    parsed = pd.to_datetime(column, errors="coerce", utc=True)
    bad = parsed.isna() & column.notna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"monitor.input: time column {name!r} holds {int(bad.sum())} value(s) that are "
            f"neither numbers nor dates, e.g. row {first + 1}: {column.iloc[first]!r}."
        )
    return parsed


def cut_windows(
    frame: pd.DataFrame,
    by: str,
    size: int,
    time_column: str | None,
    every: str | None,
    start: Any,
    from_log: bool = False,
) -> list[Window]:
    """Windows of the input rows.

    by "all": one window; "count": consecutive windows of `size` rows in file order (a last
    window of less than half `size` joins the one before); "time": by `time_column`, one
    window per distinct value (e.g. a year) or, with `every` (a pandas frequency: "D",
    "W", "MS", "QS", "YS"), per calendar period of a date column. `start`: rows earlier
    than this time are left out (e.g. the training period). An empty window (a period
    with no rows between others, or no rows at all) is an error naming it.
    """
    n = len(frame)
    if by == "time":
        if time_column is None or time_column not in frame.columns:
            raise DataError(
                f"monitor.window.by is 'time' but the time column {time_column!r} is not in "
                f"monitor.input (columns: {[str(c) for c in frame.columns][:20]}); set "
                "monitor.window.time_column, or monitor.window.by: count."
            )
        times = _time_values(frame[time_column], time_column, from_log)
        keep = times.notna().to_numpy().copy()
        if start is not None:
            if pd.api.types.is_datetime64_any_dtype(times) and not isinstance(start, str):
                raise DataError(
                    f"monitor.window.start = {start!r} is a number but {time_column!r} holds "
                    "dates: give a date, e.g. '2016-01-01'."
                )
            bound = (
                pd.Timestamp(start, tz="UTC")
                if pd.api.types.is_datetime64_any_dtype(times)
                else float(start)
            )
            if pd.api.types.is_datetime64_any_dtype(times) and times.dt.tz is None:
                bound = bound.tz_localize(None)
            keep &= (times >= bound).to_numpy()
        if not keep.any():
            raise DataError(
                f"monitor.input: no row has a {time_column!r} at or after monitor.window.start "
                f"= {start!r}: the window is empty."
            )
        positions = np.flatnonzero(keep)
        kept = times.iloc[positions]
        if every is not None:
            if not pd.api.types.is_datetime64_any_dtype(kept):
                raise DataError(
                    f"monitor.window.every = {every!r} needs dates in {time_column!r}; it holds "
                    "numbers: leave every null (one window per distinct value)."
                )
            naive = kept.dt.tz_localize(None) if kept.dt.tz is not None else kept
            try:
                periods = naive.dt.to_period(every)
            except ValueError as exc:
                raise DataError(f"monitor.window.every = {every!r}: {exc}") from None
            span = pd.period_range(periods.min(), periods.max(), freq=periods.dt.freq)
            keys = periods.to_numpy()
            windows = []
            for period in span:
                rows = positions[keys == period]
                if not len(rows):
                    raise DataError(
                        f"window {period} ({period.start_time.date()} to {period.end_time.date()}) "
                        f"of {time_column!r} holds no rows: the input has a gap there (no "
                        "traffic, or a missing file). Give a longer monitor.window.every, or "
                        "monitor.window.start after the gap."
                    )
                windows.append(
                    Window(str(period), rows, str(period.start_time), str(period.end_time))
                )
        else:
            values = kept.to_numpy()
            distinct = np.unique(values)
            if len(distinct) > MAX_WINDOWS:
                raise DataError(
                    f"{time_column!r} holds {len(distinct)} distinct times, one window each: set "
                    "monitor.window.every (e.g. 'D', 'W', 'MS') or monitor.window.by: count."
                )
            windows = [
                Window(_label(value), positions[values == value], _plain(value), _plain(value))
                for value in distinct
            ]
        return windows
    if n == 0:
        raise DataError("monitor.input holds no rows: nothing to monitor (the window is empty).")
    if by == "all":
        return [Window("all", np.arange(n))]
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < size / 2:
        starts.pop()  # a short tail joins the window before it
    if len(starts) > MAX_WINDOWS:
        raise DataError(
            f"monitor.window.size = {size} cuts {n} rows into {len(starts)} windows (at most "
            f"{MAX_WINDOWS}): give a larger size."
        )
    ends = [*starts[1:], n]
    return [
        Window(f"rows {a + 1}-{b}", np.arange(a, b), a + 1, b)
        for a, b in zip(starts, ends, strict=True)
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.datetime64 | pd.Timestamp):
        return str(pd.Timestamp(value))
    return value


def _label(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
