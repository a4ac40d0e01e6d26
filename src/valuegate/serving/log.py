"""The prediction log: one SQLite row per scored record, in WAL mode.

Each request is one transaction committed before the response is sent; with WAL and
synchronous=NORMAL a crash of the process loses at most the request in flight (a power
loss may lose the last few commits). Several worker processes may write to one file.
Columns: ts (unix seconds), request_id, model_version, inputs (JSON), score, decision
(JSON: true/false or a number), expected_value.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

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


class PredictionLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def append(
        self,
        request_id: str,
        model_version: str,
        rows: list[tuple[dict[str, Any], float, Any, Any]],
    ) -> None:
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


def read_log(path: str | Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM predictions ORDER BY id").fetchall()
    finally:
        conn.close()
    out = []
    for row in rows:
        item = dict(row)
        item["inputs"] = json.loads(item["inputs"])
        item["decision"] = json.loads(item["decision"])
        out.append(item)
    return out
