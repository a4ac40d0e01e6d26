"""Benchmark: reading a window of the prediction log vs the same rows from Parquet (issue 15).

One run, same machine, same rows:

1. the German credit example's input schema (the example's config, prepared, then
   `bundle.input_schema`, as a bundle records it: 13 categorical and 7 numeric fields);
2. synthetic requests of that schema: raw rows resampled, numbers jittered, ~2% of values
   missing and ~1% unseen categories, each record passed through `bundle.RecordChecker`
   (the service's per-record path), random scores, decision = score >= 0.3, one record
   per request (`--rows-per-request`);
3. the same requests appended, block by block in turn (so load from other work falls on
   each alike), to three logs, each timed per request:
   - `segments`: valuegate's log (`PredictionLog`: typed rows sealed into Arrow segments
     by its background thread, as in the service);
   - `typed`: the same writer with sealing off (segment_rows above the request count):
     typed SQLite columns only, the layout weighed against segments;
   - `json`: the layout before (inputs as JSON text; its writer is copied below);
4. reads, `--repeat` times in turn, median: a window of `--window` of the rows (the
   middle ones, by time) and all rows, from `read_log_frame` against `pandas.read_parquet`
   of a Parquet file holding exactly those rows (written by pandas from the frame the log
   returned, so both give the same frame); once each (they are slow): the same window from
   the typed-only log (`read_log_frame`) and from the JSON log (SQL + `json.loads` per row
   + a DataFrame with categoricals, what monitoring would do with the old log).

Printed: append microseconds per request per layout, read seconds per source, and the
ratios log/Parquet (target for all 1M rows, the issue's 1M-request window: <= 2x).
Results: bench/results/log_read.json.
Usage: python bench/log_read.py [--requests 1000000] [--window 0.5] [--repeat 5]
       [--layouts segments,typed,json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class JsonLog:
    """The prediction log before issue 15 (layout 1), verbatim but for its name: one
    SQLite row per record, inputs and decision as JSON text."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS predictions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        inputs TEXT NOT NULL,
        score REAL NOT NULL,
        decision TEXT NOT NULL,
        expected_value REAL
    );
    CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
    """

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(self.SCHEMA)
        self._lock = threading.Lock()

    def append(self, request_id, model_version, rows) -> None:
        now = time.time()
        data = [
            (now, request_id, model_version, json.dumps(inputs), score, json.dumps(decision), ev)
            for inputs, score, decision, ev in rows
        ]
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO predictions (ts, request_id, model_version, inputs, score, "
                "decision, expected_value) VALUES (?, ?, ?, ?, ?, ?, ?)",
                data,
            )
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


def read_json_window(path: Path, fields: list[dict], since: float, until: float) -> pd.DataFrame:
    """The old log's window as the typed frame: what monitoring had to do with it."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT ts, request_id, model_version, score, decision, expected_value, inputs "
            "FROM predictions WHERE ts >= ? AND ts < ? ORDER BY id",
            (since, until),
        ).fetchall()
    finally:
        conn.close()
    columns = list(zip(*rows, strict=True))
    frame = pd.DataFrame(
        {
            "ts": np.asarray(columns[0], dtype=float),
            "request_id": columns[1],
            "model_version": pd.Categorical(columns[2]),
            "score": np.asarray(columns[3], dtype=float),
            "decision": [json.loads(d) for d in columns[4]],
            "expected_value": np.asarray(columns[5], dtype=float),
        }
    )
    inputs = pd.DataFrame.from_records([json.loads(text) for text in columns[6]])
    for field in fields:
        name = field["name"]
        if field["dtype"] == "category":
            frame[name] = inputs[name].astype("category")
        else:
            frame[name] = inputs[name].astype(float)
    return frame


def make_requests(fields: list[dict], raw: pd.DataFrame, n: int, rng) -> list:
    """n requests' rows: (record, score, decision, expected value), as the service makes
    them (RecordChecker resolves categories; unseen ones are kept as their text)."""
    from valuegate.bundle import RecordChecker

    check = RecordChecker(fields)
    frame = raw.iloc[rng.integers(0, len(raw), n)].reset_index(drop=True)
    frame = frame.astype(object)
    for field in fields:
        name = field["name"]
        column = frame[name]
        if field["dtype"] != "category":
            values = column.astype(float).to_numpy() * rng.normal(1.0, 0.05, n)
            column = pd.Series(values.round(2), dtype=object)
        else:
            unseen = rng.random(n) < 0.01
            column = column.astype(str).where(~unseen, "new level")
        if field.get("role") != "amount":
            column = column.where(rng.random(n) >= 0.02, None)
        frame[name] = column
    records = frame.to_dict("records")
    scores = rng.random(n)
    values = rng.normal(0.0, 100.0, n)
    out = []
    for record, score, value in zip(records, scores.tolist(), values.tolist(), strict=True):
        record = {k: (None if v is None or v != v else v) for k, v in record.items()}
        checked, _, _ = check(record)
        out.append((checked, score, score >= 0.3, value))
    return out


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rows-per-request", type=int, default=1)
    parser.add_argument("--block", type=int, default=20_000, help="requests per turn")
    parser.add_argument("--window", type=float, default=0.5, help="share of rows in the window")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--layouts", default="segments,typed,json")
    parser.add_argument("--workdir", help="keep the logs here (default: a temp dir, removed)")
    args = parser.parse_args()
    layouts = args.layouts.split(",")

    from tests.deploy_helpers import prepared, raw_rows

    from valuegate.bundle import input_schema
    from valuegate.serving.log import SEGMENT_ROWS, PredictionLog, read_log_frame

    _cfg, splits, schema = prepared()
    fields = input_schema(schema, splits["train"])
    raw = raw_rows().drop(columns=["creditability"])
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vg-log-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = {name: work / f"{name}.sqlite" for name in layouts}
    for path in paths.values():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    rows_total = args.requests * args.rows_per_request
    writers = {
        "segments": lambda p: PredictionLog(p, fields, "binary"),
        "typed": lambda p: PredictionLog(p, fields, "binary", segment_rows=rows_total + 1),
        "json": JsonLog,
    }
    logs = {name: writers[name](paths[name]) for name in layouts}
    seconds = dict.fromkeys(layouts, 0.0)
    rng = np.random.default_rng(0)
    done = 0
    print(f"writing {args.requests:,} requests to {', '.join(layouts)} in {work}", flush=True)
    while done < args.requests:
        n = min(args.block, args.requests - done)
        block = make_requests(fields, raw, n * args.rows_per_request, rng)
        requests = [
            (f"{done + i:032x}", block[i * args.rows_per_request : (i + 1) * args.rows_per_request])
            for i in range(n)
        ]
        for name, log in logs.items():
            append = log.append
            started = time.perf_counter()
            for request_id, rows in requests:
                append(request_id, "v1", rows)
            seconds[name] += time.perf_counter() - started
        done += n
        if done % (10 * args.block) == 0:
            print(f"  {done:,} requests", flush=True)
    for name, log in logs.items():
        started = time.perf_counter()
        log.close()  # waits for a seal in progress: part of the writer's cost
        seconds[name] += time.perf_counter() - started
    results: dict = {
        "settings": {**vars(args), "segment_rows": SEGMENT_ROWS, "fields": len(fields)},
        "append_us_per_request": {n: s / args.requests * 1e6 for n, s in seconds.items()},
    }
    for name, us in results["append_us_per_request"].items():
        print(f"append {name:<9} {us:8.1f} us/request")

    reference = paths["segments"] if "segments" in paths else paths["typed"]
    every = read_log_frame(reference)
    ts = every["ts"].to_numpy()
    lo_i = int(len(ts) * (1 - args.window) / 2)
    hi_i = lo_i + int(len(ts) * args.window)
    since, until = float(ts[lo_i]), float(ts[hi_i]) if hi_i < len(ts) else None
    window = every.iloc[lo_i:hi_i].reset_index(drop=True)
    parquet_window, parquet_all = work / "window.parquet", work / "all.parquet"
    window.to_parquet(parquet_window)
    every.to_parquet(parquet_all)
    del every
    reads: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, fn in (
            ("parquet window", lambda: pd.read_parquet(parquet_window)),
            ("log window", lambda: read_log_frame(reference, since=since, until=until)),
            ("parquet all", lambda: pd.read_parquet(parquet_all)),
            ("log all", lambda: read_log_frame(reference)),
        ):
            took, frame = timed(fn)
            reads.setdefault(name, []).append(took)
        del frame
    got = read_log_frame(reference, since=since, until=until)
    pd.testing.assert_frame_equal(got, pd.read_parquet(parquet_window))
    del got
    if "typed" in paths and reference != paths["typed"]:
        took, frame = timed(read_log_frame, paths["typed"], None, since, until)
        assert len(frame) == len(window)
        reads["typed-only window"] = [took]
        del frame
    if "json" in paths:
        until_json = until if until is not None else float("inf")
        took, frame = timed(read_json_window, paths["json"], fields, since, until_json)
        reads["json window"] = [took]
        del frame
    median = {name: statistics.median(times) for name, times in reads.items()}
    results["read_seconds"] = median
    results["rows"] = {"all": len(ts), "window": len(window)}
    results["ratios"] = {
        "log/parquet window": median["log window"] / median["parquet window"],
        "log/parquet all": median["log all"] / median["parquet all"],
    }
    for name in ("typed-only window", "json window"):
        if name in median:
            results["ratios"][f"{name.split()[0]}/parquet window"] = (
                median[name] / median["parquet window"]
            )
    results["sizes_mb"] = {
        name: sum(p.stat().st_size for p in work.glob(f"{name}.sqlite*")) / 2**20
        for name in layouts
    }
    results["sizes_mb"]["parquet all"] = parquet_all.stat().st_size / 2**20
    print(f"window {len(window):,} rows of {len(ts):,}")
    for name, took in median.items():
        print(f"read {name:<18} {took:8.3f} s")
    for name, ratio in results["ratios"].items():
        target = (
            "  (the issue's 1M-request window: target <= 2x)" if name == "log/parquet all" else ""
        )
        print(f"{name:<28} {ratio:6.2f}x{target}")
    out = ROOT / "bench" / "results" / "log_read.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
