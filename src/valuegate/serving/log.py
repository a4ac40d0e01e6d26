"""The prediction log: typed rows in SQLite, sealed into columnar segments, one file.

Layout 2 (`PRAGMA user_version = 2`), all in the one SQLite file, in WAL mode:

- `schemas`: one row per input schema (the bundle's fields: names, dtypes, categories,
  and whether the decision is a bool or a number), with its JSON and a digest;
- `rows_<schema id>`: the recent rows, one typed column per field (`f0`, `f1`, ... in
  the order of the schema's fields: REAL for numbers, TEXT for categories, NULL missing),
  one row per scored record;
- `segments`: sealed blocks of `segment_rows` rows each, an Arrow IPC file
  (uncompressed) in a BLOB, with the block's id range, time range and rows per model version.

Each request is one transaction committed before the response is sent; with WAL and
synchronous=NORMAL a crash of the process loses at most the request in flight (a power
loss may lose the last few commits). Several worker processes may write to one file.
Once a schema's table holds `segment_rows` rows, a background thread of the writer seals
the oldest `segment_rows` of them: it encodes them outside any lock, then in one
transaction inserts the segment and deletes those rows, so a crash leaves every row in
exactly one place, and two workers never seal the same rows (the second sees the first's
segment and stops).

Why segments: SQLite hands typed rows back as Python tuples (~35-75 us a row on the shared
machine: a 500,000-row window 53x the same rows from Parquet; the JSON layout before, 118x);
an uncompressed Arrow segment decodes without a copy, so a 1M-row window reads in ~1.2x
the time of Parquet (bench/log_read.py; zstd segments, 4x smaller, read 2.2x).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from valuegate.errors import DataError

LAYOUT = 2
# PRAGMA application_id of a valuegate prediction log ("vglg"), so another SQLite file is
# recognised as one.
APPLICATION_ID = 0x76676C67
SEGMENT_ROWS = 8192
FIXED = ("ts", "request_id", "model_version", "score", "decision", "expected_value")

CATALOG = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL,
    decision TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    schema_id INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    ts_min REAL NOT NULL,
    ts_max REAL NOT NULL,
    versions TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (schema_id, first_id)
);
"""


class LogError(DataError):
    """The prediction log cannot be read or written as asked (names the file and why)."""

    kind = "prediction log error"


def _schema_of(fields: list[dict[str, Any]], task: str) -> dict[str, Any]:
    """What fixes the typed columns: each field's name, dtype and known categories (the
    order of the categories is the bundle's), and the decision's type. Flags that do not
    change a column (nullable, seen_missing, unseen, role) are left out."""
    if not fields:
        raise LogError("the prediction log needs the bundle's input fields; none were given")
    out = []
    for field in fields:
        entry = {
            "name": str(field["name"]),
            "dtype": "category" if field["dtype"] == "category" else "float64",
        }
        if entry["dtype"] == "category":
            entry["categories"] = [str(c) for c in field.get("categories", [])]
        out.append(entry)
    names = [f["name"] for f in out]
    if len(set(names)) != len(names):
        raise LogError(
            f"the input fields repeat a name: {sorted({n for n in names if names.count(n) > 1})}"
        )
    return {"fields": out, "decision": "bool" if task == "binary" else "float"}


def _digest(schema: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=NORMAL")


def _layout(conn: sqlite3.Connection, path: Path) -> int:
    """The file's layout: 0 for an empty database, 1 for the JSON layout (a `predictions`
    table with an `inputs` column), 2 for this one. LogError for anything else."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise LogError(f"{path} is not a prediction log (SQLite says: {exc})") from None
    if app == APPLICATION_ID:
        if version == LAYOUT:
            return LAYOUT
        raise LogError(
            f"{path} is a prediction log of layout {version}; this valuegate reads layout "
            f"{LAYOUT} (a newer valuegate wrote it, or it is damaged)"
        )
    if "predictions" in tables:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(predictions)")}
        if "inputs" in columns:
            return 1
    if tables:
        raise LogError(
            f"{path} is an SQLite file but not a valuegate prediction log (it holds the "
            f"tables {sorted(tables)})"
        )
    return 0


def _layout1_message(path: Path) -> str:
    return (
        f"{path} is a prediction log of layout 1 (inputs as JSON text, one table), written "
        f"by an older valuegate; this one writes and reads layout {LAYOUT} (typed columns and "
        f"columnar segments). Move the old file aside (the service then starts a new log at "
        f"this path) or give the service another path (`valuegate serve --log PATH`); "
        f"valuegate.serving.log.read_log still reads the old file as records"
    )


class PredictionLog:
    """The service's writer: `append` one request's scored records, committed before it
    returns. One instance per process (thread-safe); several processes may share a file.

    fields: the bundle's input fields (`Bundle.fields`); task: the bundle's task ("binary":
    decisions are bools; otherwise numbers); segment_rows: rows per sealed segment;
    background: seal in a thread (False: seal inside `append`, for tests and scripts)."""

    def __init__(
        self,
        path: str | Path,
        fields: list[dict[str, Any]],
        task: str = "binary",
        segment_rows: int = SEGMENT_ROWS,
        background: bool = True,
    ):
        if segment_rows < 1:
            raise LogError(f"segment_rows must be at least 1, not {segment_rows}")
        self.path = Path(path)
        self.schema = _schema_of(fields, task)
        self.names = [f["name"] for f in self.schema["fields"]]
        self.segment_rows = int(segment_rows)
        self.background = background
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self.schema_id = self._open(self._conn)
        except BaseException:
            self._conn.close()
            raise
        self.table = f"rows_{self.schema_id}"
        columns = ", ".join(f"f{i}" for i in range(len(self.names)))
        marks = ", ".join("?" * (len(FIXED) + len(self.names)))
        self._insert = (
            f"INSERT INTO {self.table} (ts, request_id, model_version, score, decision, "
            f"expected_value, {columns}) VALUES ({marks})"
        )
        self._lock = threading.Lock()
        # Check the table's size every so many appended rows (two index lookups), not on
        # every request.
        self._check_every = max(1, min(1024, self.segment_rows // 4))
        self._since_check = 0
        self._sealer: threading.Thread | None = None
        # pyarrow encodes the segments: imported now, at startup, not by the first seal
        # while requests are being served.
        import pyarrow.ipc  # noqa: F401

    def _open(self, conn: sqlite3.Connection) -> int:
        """Create (or check) the catalog and this schema's table; its id."""
        _configure(conn)
        found = _layout(conn, self.path)
        if found == 1:
            raise LogError(_layout1_message(self.path))
        if found == 0:
            # WAL persists in the file: set once, by the first writer.
            conn.execute("PRAGMA journal_mode=WAL")
        schema_json = json.dumps(self.schema, sort_keys=True)
        digest = _digest(self.schema)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _layout(conn, self.path) == 0:  # another worker may have made it meanwhile
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={LAYOUT}")
            # one statement at a time: executescript would commit the open transaction
            for statement in CATALOG.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO schemas (digest, fields, decision, created) "
                "VALUES (?, ?, ?, ?)",
                (digest, schema_json, self.schema["decision"], time.time()),
            )
            schema_id = conn.execute("SELECT id FROM schemas WHERE digest=?", (digest,)).fetchone()[
                0
            ]
            typed = ", ".join(
                f"f{i} {'TEXT' if f['dtype'] == 'category' else 'REAL'}"
                for i, f in enumerate(self.schema["fields"])
            )
            # AUTOINCREMENT: ids are never reused after sealed rows are deleted, so a
            # segment's id range names its rows for good.
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS rows_{schema_id} (id INTEGER PRIMARY KEY "
                f"AUTOINCREMENT, ts REAL NOT NULL, request_id TEXT NOT NULL, model_version "
                f"TEXT NOT NULL, score REAL NOT NULL, decision REAL NOT NULL, "
                f"expected_value REAL, {typed})"
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return int(schema_id)

    def append(
        self,
        request_id: str,
        model_version: str,
        rows: list[tuple[dict[str, Any], float, Any, Any]],
    ) -> None:
        """Log one request: rows of (record: field name -> value, score, decision,
        expected value or None), committed in one transaction before this returns."""
        now = time.time()
        names = self.names
        data = [
            (now, request_id, model_version, score, decision, ev, *[record.get(n) for n in names])
            for record, score, decision, ev in rows
        ]
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.executemany(self._insert, data)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._since_check += len(data)
            if self._since_check < self._check_every:
                return
            self._since_check = 0
            # ids are consecutive but for rolled-back gaps: max - min + 1 bounds the count
            table = self.table
            hot = conn.execute(
                f"SELECT (SELECT max(id) FROM {table}) - (SELECT min(id) FROM {table}) + 1"
            ).fetchone()[0]
        if hot is not None and hot >= self.segment_rows:
            self._start_seal()

    def _start_seal(self) -> None:
        if not self.background:
            self.seal()
            return
        if self._sealer is not None and self._sealer.is_alive():
            return
        self._sealer = threading.Thread(target=self.seal, name="prediction-log-seal", daemon=True)
        self._sealer.start()

    def seal(self, partial: bool = False) -> int:
        """Seal full segments of this schema's rows (and, with `partial`, the rest too);
        the number of rows sealed. Safe against other processes sealing at the same time."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        sealed = 0
        try:
            _configure(conn)
            while True:
                conn.execute("BEGIN")  # one read snapshot: the sealed id and the rows agree
                upto = _sealed_upto(conn, self.schema_id)
                rows = conn.execute(
                    f"SELECT * FROM {self.table} ORDER BY id LIMIT ?", (self.segment_rows,)
                ).fetchall()
                conn.execute("COMMIT")
                if not rows or (len(rows) < self.segment_rows and not partial):
                    return sealed
                table = _encode(rows, self.schema)
                blob = _to_ipc(table)
                versions: dict[str, int] = {}
                for row in rows:
                    versions[row[3]] = versions.get(row[3], 0) + 1
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if _sealed_upto(conn, self.schema_id) != upto:
                        conn.execute("ROLLBACK")  # another process sealed these rows
                        return sealed
                    conn.execute(
                        "INSERT INTO segments (schema_id, first_id, last_id, n_rows, ts_min, "
                        "ts_max, versions, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            self.schema_id,
                            rows[0][0],
                            rows[-1][0],
                            len(rows),
                            min(r[1] for r in rows),
                            max(r[1] for r in rows),
                            json.dumps(versions, sort_keys=True),
                            blob,
                        ),
                    )
                    conn.execute(f"DELETE FROM {self.table} WHERE id <= ?", (rows[-1][0],))
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                sealed += len(rows)
        finally:
            conn.close()

    def flush(self) -> None:
        """Wait for a background seal in progress."""
        sealer = self._sealer
        if sealer is not None:
            sealer.join()

    def close(self) -> None:
        self.flush()
        self._conn.close()


def _sealed_upto(conn: sqlite3.Connection, schema_id: int) -> int:
    found = conn.execute(
        "SELECT max(last_id) FROM segments WHERE schema_id=?", (schema_id,)
    ).fetchone()[0]
    return int(found or 0)


# --------------------------------------------------------------------------- columns


def _arrow_schema(schema: dict[str, Any]) -> Any:
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    columns = [
        ("id", pa.int64()),
        ("ts", pa.float64()),
        ("request_id", pa.string()),
        ("model_version", text),
        ("score", pa.float64()),
        ("decision", pa.float64()),
        ("expected_value", pa.float64()),
    ]
    for i, field in enumerate(schema["fields"]):
        columns.append((f"f{i}", text if field["dtype"] == "category" else pa.float64()))
    return pa.schema(columns)


def _dictionary(values: tuple, known: list[str]) -> Any:
    """Text values (None: missing) -> an Arrow dictionary array whose dictionary is `known`
    (the bundle's categories, in its order) followed by any other value, in order of first
    appearance: a reader maps the known part of every segment without a lookup."""
    import pyarrow as pa

    dictionary = list(known)
    lookup = {value: i for i, value in enumerate(known)}
    codes = []
    for value in values:
        if value is None:
            codes.append(None)
            continue
        code = lookup.get(value)
        if code is None:
            code = lookup[value] = len(dictionary)
            dictionary.append(value)
        codes.append(code)
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), pa.array(dictionary, pa.string())
    )


def _encode(rows: list[tuple], schema: dict[str, Any]) -> Any:
    """Rows of a `rows_<id>` table (id, ts, request_id, model_version, score, decision,
    expected_value, f0, ...) -> an Arrow table (categories dictionary-encoded)."""
    import pyarrow as pa

    target = _arrow_schema(schema)
    if not rows:
        return target.empty_table()
    columns = list(zip(*rows, strict=True))
    known = {f"f{i}": f.get("categories", []) for i, f in enumerate(schema["fields"])}
    arrays = []
    for column, field in zip(columns, target, strict=True):
        if pa.types.is_dictionary(field.type):
            arrays.append(_dictionary(column, known.get(field.name, [])))
        else:
            arrays.append(pa.array(column, field.type))
    return pa.Table.from_arrays(arrays, schema=target)


def _to_ipc(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    sink = pa.BufferOutputStream()
    # Uncompressed: a segment is then read without a copy. zstd makes the log ~4x smaller
    # but its decoding made a 1M-row window ~2x slower to read than Parquet
    # (bench/log_read.py); lz4 sat between the two.
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(blob: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    return ipc.open_file(pa.BufferReader(blob)).read_all()


# --------------------------------------------------------------------------- reading


def _seconds(value: Any, name: str) -> float | None:
    """since/until -> unix seconds: a number (unix seconds), a datetime or pandas
    Timestamp (naive: UTC), or an ISO 8601 text."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise LogError(
            f"{name} must be unix seconds, a datetime or an ISO 8601 text, not {value!r}"
        )
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise LogError(f"{name} must be finite unix seconds, not {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise LogError(
                f"{name}: {value!r} is not an ISO 8601 time (e.g. 2026-11-30T12:00:00+00:00)"
            ) from None
    if isinstance(value, dt.datetime):  # pandas.Timestamp is one
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    raise LogError(
        f"{name} must be unix seconds, a datetime or an ISO 8601 text, not {type(value).__name__}"
    )


def _connect_ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise LogError(f"no prediction log at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _catalog(conn: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    """Per schema: its fields, and per model version its rows and first/last time."""
    out: dict[int, dict[str, Any]] = {}
    for schema_id, fields in conn.execute("SELECT id, fields FROM schemas ORDER BY id"):
        out[schema_id] = {"schema": json.loads(fields), "versions": {}}
    for schema_id, ts_min, ts_max, versions in conn.execute(
        "SELECT schema_id, ts_min, ts_max, versions FROM segments"
    ):
        for version, count in json.loads(versions).items():
            _count(out[schema_id]["versions"], version, count, ts_min, ts_max)
    for schema_id in out:
        for version, count, ts_min, ts_max in conn.execute(
            f"SELECT model_version, count(*), min(ts), max(ts) FROM rows_{schema_id} "
            "GROUP BY model_version"
        ):
            _count(out[schema_id]["versions"], version, count, ts_min, ts_max)
    return out


def _count(versions: dict, version: str, count: int, ts_min: float, ts_max: float) -> None:
    seen = versions.setdefault(version, {"rows": 0, "first": ts_min, "last": ts_max})
    seen["rows"] += count
    seen["first"] = min(seen["first"], ts_min)
    seen["last"] = max(seen["last"], ts_max)


def _describe(catalog: dict[int, dict[str, Any]]) -> str:
    parts = []
    for entry in catalog.values():
        for version, seen in sorted(entry["versions"].items()):
            span = f"{_when(seen['first'])} to {_when(seen['last'])}"
            parts.append(f"{version} ({seen['rows']:,} rows, {span})")
    return ", ".join(parts) or "no rows"


def _window_table(
    conn: sqlite3.Connection,
    schema_id: int,
    schema: dict[str, Any],
    since: float | None,
    until: float | None,
    model_version: str | None,
) -> Any:
    """One schema's rows in [since, until) (of `model_version`), segments then recent rows,
    in the order logged, as an Arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lo = -math.inf if since is None else since
    hi = math.inf if until is None else until
    segments = conn.execute(
        "SELECT ts_min, ts_max, versions, data FROM segments WHERE schema_id=? AND "
        "ts_max >= ? AND ts_min < ? ORDER BY first_id",
        (schema_id, lo, hi),
    ).fetchall()
    where, args = "WHERE ts >= ? AND ts < ?", [lo, hi]
    if model_version is not None:
        where += " AND model_version = ?"
        args.append(model_version)
    recent = conn.execute(f"SELECT * FROM rows_{schema_id} {where} ORDER BY id", args).fetchall()
    tables = []
    for ts_min, ts_max, versions, blob in segments:
        table = _from_ipc(blob)
        # only a segment across a window bound, or holding other versions, is filtered:
        # the others are taken whole, without a copy
        keep = None
        if ts_min < lo or ts_max >= hi:
            keep = pc.and_(pc.greater_equal(table["ts"], lo), pc.less(table["ts"], hi))
        if model_version is not None and set(json.loads(versions)) != {model_version}:
            same = pc.equal(table["model_version"].cast(pa.string()), model_version)
            keep = same if keep is None else pc.and_(keep, same)
        tables.append(table if keep is None else table.filter(keep))
    if recent or not tables:
        tables.append(_encode(recent, schema))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _categorical(column: Any, known: list[str]) -> Any:
    """A dictionary-encoded Arrow column (one dictionary per segment) -> a pandas
    Categorical with categories `known`, then any other value present (sorted). A
    segment's dictionary starts with `known` (`_dictionary`), so its codes are used as
    they are; only segments holding other values are remapped."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = [c for c in column.chunks if len(c)]
    k = len(known)
    known_array = pa.array(known, pa.string())
    prefixed = [
        len(c.dictionary) >= k and c.dictionary.slice(0, k).equals(known_array) for c in chunks
    ]
    others: set[str] = set()
    for chunk, prefix in zip(chunks, prefixed, strict=True):
        rest = chunk.dictionary.slice(k) if prefix else chunk.dictionary
        others.update(v for v in rest.to_pylist() if v is not None)
    extra = sorted(others - set(known))
    position = {value: i for i, value in enumerate([*known, *extra])}
    if not chunks:
        codes = np.empty(0, dtype=np.int32)
    else:
        indices = pa.chunked_array([c.indices for c in chunks], pa.int32())
        codes = pc.fill_null(indices, -1).to_numpy().astype(np.int32, copy=True)
    start = 0
    for chunk, prefix in zip(chunks, prefixed, strict=True):
        end = start + len(chunk)
        if not prefix or len(chunk.dictionary) > k:
            # this segment's dictionary -> the frame's codes; -1 (missing) stays -1
            mapping = np.array(
                [*(position[v] if v is not None else -1 for v in chunk.dictionary.to_pylist()), -1],
                dtype=np.int32,
            )
            codes[start:end] = mapping[codes[start:end]]
        start = end
    categories = [*known, *extra]
    if extra:  # a boundary segment's dictionary may hold values filtered out of the window
        used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
        used[:k] = True
        if not used.all():
            renumber = (np.cumsum(used) - 1).astype(np.int32)
            codes = np.where(codes >= 0, renumber[np.maximum(codes, 0)], -1).astype(np.int32)
            categories = [c for c, keep in zip(categories, used, strict=True) if keep]
    dtype = pd.CategoricalDtype(pd.Index(categories, dtype=object).astype(str))
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _to_frame(table: Any, schema: dict[str, Any]) -> Any:
    """Arrow rows -> the typed frame: ts, request_id, model_version, score, decision,
    expected_value, then each field under its name (numbers float64 with NaN for missing;
    categories pandas categoricals whose categories are the bundle's known ones, in the
    bundle's order, then any other value seen, sorted)."""
    import numpy as np
    import pandas as pd

    def numbers(name: str) -> Any:
        return table[name].to_numpy().astype(np.float64, copy=False)

    decision = numbers("decision")
    columns: dict[str, Any] = {
        "ts": numbers("ts"),
        "request_id": table["request_id"].to_pandas(),
        "model_version": _categorical(table["model_version"], []),
        "score": numbers("score"),
        "decision": decision.astype(bool) if schema["decision"] == "bool" else decision,
        "expected_value": numbers("expected_value"),
    }
    for i, field in enumerate(schema["fields"]):
        column = f"f{i}"
        # a field named like a fixed column keeps its value under "input:<name>"
        name = field["name"]
        name = f"input:{name}" if name in FIXED else name
        if field["dtype"] == "category":
            columns[name] = _categorical(table[column], field["categories"])
        else:
            columns[name] = numbers(column)
    return pd.DataFrame(columns, copy=False)


def read_log_frame(
    path: str | Path,
    model_version: str | None = None,
    since: Any = None,
    until: Any = None,
) -> Any:
    """The logged rows with ts in [since, until) as a pandas DataFrame, in the order logged.

    Columns: ts (float, unix seconds), request_id (str), model_version (category), score
    (float), decision (bool for a binary model, else float), expected_value (float, NaN
    when none), then one column per input field, named as the field: float64 (NaN when
    missing) or a categorical whose categories are the bundle's known ones in the bundle's
    order, then any other value logged (unseen categories, sorted). since/until: unix
    seconds, a datetime (naive: UTC) or ISO 8601 text; None: unbounded.

    model_version: only that version's rows; LogError naming the versions the log holds if
    it has none. Without it the rows must share one input schema: LogError listing the
    versions per schema otherwise. LogError for a missing file, a file that is not a
    prediction log, or a log of another layout.
    """
    path = Path(path)
    lo, hi = _seconds(since, "since"), _seconds(until, "until")
    if lo is not None and hi is not None and hi < lo:
        raise LogError(f"until ({_when(hi)}) is before since ({_when(lo)}): the window is inverted")
    conn = _connect_ro(path)
    try:
        found = _layout(conn, path)
        if found == 1:
            raise LogError(_layout1_message(path))
        if found == 0:
            raise LogError(f"{path} holds no prediction log (an empty SQLite file)")
        conn.execute("BEGIN")  # one snapshot: a segment sealed meanwhile is not read twice
        try:
            catalog = _catalog(conn)
            if model_version is not None:
                chosen = [s for s, e in catalog.items() if model_version in e["versions"]]
                if not chosen:
                    raise LogError(
                        f"{path} holds no rows of model version {model_version!r}; it holds "
                        f"{_describe(catalog)}"
                    )
                if len(chosen) > 1:
                    raise LogError(
                        f"{path}: model version {model_version!r} logged rows under "
                        f"{len(chosen)} different input schemas; the log is inconsistent"
                    )
            else:
                chosen = [
                    s
                    for s, e in catalog.items()
                    if any(
                        (lo is None or v["last"] >= lo) and (hi is None or v["first"] < hi)
                        for v in e["versions"].values()
                    )
                ]
                if len(chosen) > 1:
                    listed = "; ".join(
                        f"schema {i}: {', '.join(sorted(catalog[s]['versions']))}"
                        for i, s in enumerate(chosen, 1)
                    )
                    raise LogError(
                        f"{path} holds rows of {len(chosen)} different input schemas in this "
                        f"window ({listed}); pass model_version= to read one of them"
                    )
                if not chosen:
                    chosen = [max(catalog)] if catalog else []
            if not chosen:
                raise LogError(f"{path} holds no prediction log rows and no schema")
            schema_id = chosen[0]
            schema = catalog[schema_id]["schema"]
            table = _window_table(conn, schema_id, schema, lo, hi, model_version)
        finally:
            conn.execute("COMMIT")
    finally:
        conn.close()
    return _to_frame(table, schema)


def log_span(path: str | Path, model_version: str | None = None) -> dict[str, Any]:
    """{"rows", "first", "last"}: how many rows of `model_version` (None: any) the log
    holds and their first / last ts (unix seconds), from its catalog, without reading
    the rows (monitoring reads a large log in time slices). LogError as read_log_frame."""
    path = Path(path)
    conn = _connect_ro(path)
    try:
        found = _layout(conn, path)
        if found == 1:
            raise LogError(_layout1_message(path))
        if found == 0:
            raise LogError(f"{path} holds no prediction log (an empty SQLite file)")
        catalog = _catalog(conn)
    finally:
        conn.close()
    seen = [
        v
        for entry in catalog.values()
        for version, v in entry["versions"].items()
        if model_version is None or version == model_version
    ]
    if model_version is not None and not seen:
        raise LogError(
            f"{path} holds no rows of model version {model_version!r}; it holds "
            f"{_describe(catalog)}"
        )
    return {
        "rows": int(sum(v["rows"] for v in seen)),
        "first": float(min(v["first"] for v in seen)) if seen else 0.0,
        "last": float(max(v["last"] for v in seen)) if seen else 0.0,
    }


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Every logged record as a dict (ts, request_id, model_version, inputs: field ->
    value or None, score, decision, expected_value), in time order; reads layout 1 (JSON
    inputs) too. For monitoring use `read_log_frame`: typed, and ~100x faster on a large log."""
    path = Path(path)
    conn = _connect_ro(path)
    try:
        found = _layout(conn, path)
        if found == 1:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM predictions ORDER BY id").fetchall()
            out = []
            for row in rows:
                item = dict(row)
                item["inputs"] = json.loads(item["inputs"])
                item["decision"] = json.loads(item["decision"])
                out.append(item)
            return out
        if found == 0:
            return []
        conn.execute("BEGIN")
        try:
            catalog = _catalog(conn)
            tables = [
                (entry["schema"], _window_table(conn, schema_id, entry["schema"], None, None, None))
                for schema_id, entry in catalog.items()
            ]
        finally:
            conn.execute("COMMIT")
    finally:
        conn.close()
    out = []
    for schema, table in tables:
        names = [f["name"] for f in schema["fields"]]
        boolean = schema["decision"] == "bool"
        for row in table.to_pylist():
            out.append(
                {
                    "ts": row["ts"],
                    "request_id": row["request_id"],
                    "model_version": row["model_version"],
                    "inputs": {name: row[f"f{i}"] for i, name in enumerate(names)},
                    "score": row["score"],
                    "decision": bool(row["decision"]) if boolean else row["decision"],
                    "expected_value": row["expected_value"],
                    "_id": row["id"],
                }
            )
    out.sort(key=lambda r: (r["ts"], r["_id"]))
    for item in out:
        del item["_id"]
    return out
