"""Production rows in, windows out: reading a CSV/Parquet file or the prediction log of
`valuegate serve`, joining labels that arrive later (by id), and cutting windows by the
time column or by row count. Every problem is a DataError naming the file, the column or
the window.
"""

from __future__ import annotations

import itertools
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


BATCH_ROWS = 65_536  # rows per read when streaming an input (a CSV chunk, Parquet batch)


class Source:
    """Production rows read in passes, so memory follows the largest window, not the file.

    `columns`: every column name (the header); `read_columns(names)`: those columns of
    every row (pass 1: what cuts the windows and joins labels, a few thin columns);
    `batches()`: every column, consecutive rows in file order, each batch's index their
    positions in the input (pass 2). A Parquet file is read by record batches (pyarrow,
    row group by row group),
    a CSV in chunks (pandas), the prediction log by time slices (`serving.log.
    read_log_frame(path, model_version, since, until)`: its order is time order)."""

    def __init__(
        self,
        path: str | Path,
        from_log: bool = False,
        model_version: str | None = None,
        batch_rows: int = BATCH_ROWS,
        what: str = "monitor.input",
    ):
        self.path, self.from_log, self.version = Path(path), from_log, model_version
        self.batch_rows, self.what = batch_rows, what
        if not self.path.is_file():
            raise DataError(f"{what} {self.path}: file not found.")
        suffix = self.path.suffix.lower()
        if from_log:
            self.kind = "log"
        elif suffix in (".parquet", ".pq"):
            self.kind = "parquet"
        elif suffix in (".csv", ".txt"):
            self.kind = "csv"
            if self.path.stat().st_size == 0:
                raise DataError(f"{what} {self.path} is empty: a CSV needs a header row.")
        else:
            raise DataError(
                f"{what} {self.path}: give a .csv, .parquet or prediction log "
                f"({', '.join(LOG_SUFFIXES)}) file (got {suffix or 'no suffix'})."
            )
        self._slices: list[tuple[float, float]] | None = None
        self.columns = [str(c) for c in self._guard(self._header)]

    def _guard(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except DataError:
            raise
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.what} {self.path}: cannot read it: {exc}") from None

    def _header(self) -> list[str]:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(self.path).schema_arrow.names)
        if self.kind == "csv":
            return list(pd.read_csv(self.path, nrows=0).columns)
        first = next(iter(self._log_slices()), None)
        return list(self._log_part(*first).columns) if first else []

    # ---- the log, by time slices
    def _log_slices(self) -> list[tuple[float, float]]:
        """[since, until) slices of the log's time span, about `batch_rows` rows each if
        the traffic were even (a busier slice is just a larger batch)."""
        if self._slices is None:
            from valuegate.serving.log import log_span

            span = log_span(self.path, self.version)
            pieces = max(1, -(-span["rows"] // self.batch_rows))
            first, last = span["first"], np.nextafter(span["last"], np.inf)
            edges = np.linspace(first, last, pieces + 1) if span["rows"] else []
            self._slices = [(float(a), float(b)) for a, b in itertools.pairwise(edges)]
        return self._slices

    def _log_part(self, since: float, until: float) -> pd.DataFrame:
        from valuegate.serving.log import read_log_frame

        return read_log_frame(self.path, model_version=self.version, since=since, until=until)

    # ---- pass 1 and pass 2
    def read_columns(self, names: list[str]) -> pd.DataFrame:
        """`names` (those present) of every row, positions as the index."""
        names = [c for c in names if c in self.columns]
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return self._guard(lambda: pq.read_table(self.path, columns=names).to_pandas())
        if self.kind == "csv":
            return self._guard(lambda: pd.read_csv(self.path, usecols=names, low_memory=False))
        parts = [self._log_part(a, b)[names] for a, b in self._log_slices()]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)

    def batches(self) -> Any:
        """Every column, in file order; batch index = the rows' positions in the input."""
        start = 0
        for part in self._guard(self._raw_batches):
            part.index = pd.RangeIndex(start, start + len(part))
            start += len(part)
            yield part

    def _raw_batches(self) -> Any:
        if self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            reader = pq.ParquetFile(self.path)
            # One row group at a time: one iter_batches over the whole file kept its decoded
            # buffers alive (peak RSS grew with the file: 270 -> 400 MB over 16 row groups,
            # flat at 200 MB this way).
            for group in range(reader.metadata.num_row_groups):
                for batch in reader.iter_batches(batch_size=self.batch_rows, row_groups=[group]):
                    yield pa.Table.from_batches([batch]).to_pandas()
        elif self.kind == "csv":
            yield from pd.read_csv(self.path, chunksize=self.batch_rows, low_memory=False)
        else:
            for a, b in self._log_slices():
                yield self._log_part(a, b)


def stream_windows(source: Source, windows: list[Window]) -> Any:
    """(index in `windows`, window, its rows as a frame) for each window, in one pass over
    `source.batches()`: a window is handed over as soon as the stream has passed its last
    row, so windows that are contiguous in the file (by count; by time in a time-ordered
    file) hold at most one or two windows in memory. Windows whose rows interleave are
    buffered until their last row arrives (correct, but no longer flat)."""
    order = sorted(range(len(windows)), key=lambda i: int(windows[i].rows[0]))
    pending = list(order)
    parts: dict[int, list[pd.DataFrame]] = {}
    for batch in source.batches():
        lo, hi = int(batch.index[0]), int(batch.index[-1]) + 1
        for i in list(pending):
            rows = windows[i].rows
            if int(rows[0]) >= hi:
                break  # sorted by first row: no later window starts in this batch
            a, b = np.searchsorted(rows, [lo, hi])
            if b > a:
                parts.setdefault(i, []).append(batch.iloc[rows[a:b] - lo])
        done = [i for i in pending if int(windows[i].rows[-1]) < hi]
        for i in done:
            pending.remove(i)
            chunks = parts.pop(i)
            yield i, windows[i], (pd.concat(chunks) if len(chunks) > 1 else chunks[0])
    if pending:
        raise DataError(
            f"{source.what} {source.path} changed while it was read: window "
            f"{windows[pending[0]].label} expects rows the second read did not find."
        )


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
