"""The prediction log (serving/log.py): typed rows sealed into columnar segments, read back
as a typed frame; crash-safe, several writers, versioned."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuegate.errors import DataError
from valuegate.serving.log import LogError, PredictionLog, read_log, read_log_frame

FIELDS = [
    {"name": "age", "dtype": "float64", "nullable": True},
    {"name": "purpose", "dtype": "category", "categories": ["car", "tv", "10", "2"]},
    {"name": "amount", "dtype": "float64", "nullable": False, "role": "amount"},
]
PURPOSES = ["car", "tv", None, "boat", "2"]  # "boat": an unseen category; None: missing


def record(i: int) -> dict:
    return {
        "age": None if i % 3 == 0 else 20.0 + i,
        "purpose": PURPOSES[i % len(PURPOSES)],
        "amount": 100.0 * i,
    }


def fill(path, n, version="v1", fields=FIELDS, segment_rows=4, task="binary"):
    log = PredictionLog(path, fields, task, segment_rows=segment_rows, background=False)
    for i in range(n):
        decision = i % 2 == 0 if task == "binary" else 0.5 * i
        ev = None if i == 1 else float(i)
        log.append(f"r{i}", version, [(record(i), i / n, decision, ev)])
    log.close()


def test_typed_read_back_equals_what_was_logged(tmp_path):
    path = tmp_path / "log.sqlite"
    fill(path, 11, segment_rows=4)  # two sealed segments of 4, three recent rows
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*), sum(n_rows) FROM segments").fetchone() == (2, 8)
    frame = read_log_frame(path)
    assert list(frame.columns) == [
        "ts", "request_id", "model_version", "score", "decision", "expected_value",
        "age", "purpose", "amount",
    ]  # fmt: skip
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(11)]
    assert frame["ts"].dtype == np.float64 and frame["ts"].is_monotonic_increasing
    assert abs(frame["ts"].iloc[0] - time.time()) < 60
    assert frame["score"].tolist() == [i / 11 for i in range(11)]
    assert frame["decision"].dtype == bool
    assert frame["decision"].tolist() == [i % 2 == 0 for i in range(11)]
    assert np.isnan(frame["expected_value"][1]) and frame["expected_value"][2] == 2.0
    expected_age = [np.nan if i % 3 == 0 else 20.0 + i for i in range(11)]
    np.testing.assert_array_equal(frame["age"].to_numpy(), expected_age)
    assert frame["amount"].tolist() == [100.0 * i for i in range(11)]
    # categories: the bundle's, in its order, then the unseen ones; missing is NaN
    assert isinstance(frame["purpose"].dtype, pd.CategoricalDtype)
    assert list(frame["purpose"].cat.categories) == ["car", "tv", "10", "2", "boat"]
    logged = [None if pd.isna(v) else v for v in frame["purpose"]]
    assert logged == [PURPOSES[i % 5] for i in range(11)]
    assert (frame["model_version"] == "v1").all()


def test_a_regression_log_keeps_numeric_decisions(tmp_path):
    fill(tmp_path / "log.sqlite", 6, task="regression")
    frame = read_log_frame(tmp_path / "log.sqlite")
    assert frame["decision"].dtype == np.float64
    assert frame["decision"].tolist() == [0.5 * i for i in range(6)]


def test_a_window_is_half_open_and_takes_times_in_any_form(tmp_path):
    path = tmp_path / "log.sqlite"
    fill(path, 9, segment_rows=3)
    ts = read_log_frame(path)["ts"].to_numpy()
    window = read_log_frame(path, since=ts[2], until=ts[6])
    assert window["request_id"].tolist() == ["r2", "r3", "r4", "r5"]
    since = dt.datetime.fromtimestamp((ts[1] + ts[2]) / 2, dt.UTC)  # between r1 and r2
    assert len(read_log_frame(path, since=since)) == 7
    assert len(read_log_frame(path, since=since.isoformat())) == 7
    assert len(read_log_frame(path, since=since.replace(tzinfo=None))) == 7  # naive: UTC
    empty = read_log_frame(path, since=ts[-1] + 10)
    assert len(empty) == 0 and "purpose" in empty.columns
    with pytest.raises(LogError, match="inverted"):
        read_log_frame(path, since=ts[5], until=ts[1])
    with pytest.raises(LogError, match="ISO 8601"):
        read_log_frame(path, since="yesterday")


def test_another_model_version_is_named_not_read(tmp_path):
    path = tmp_path / "log.sqlite"
    fill(path, 5, version="v1")
    with pytest.raises(LogError, match=r"no rows of model version 'v2'; it holds v1 \(5 rows"):
        read_log_frame(path, model_version="v2")
    # a second version with another input schema in the same file
    other = [*FIELDS[:1], {"name": "income", "dtype": "float64"}]
    log = PredictionLog(path, other, segment_rows=2, background=False)
    for i in range(3):
        log.append(f"s{i}", "v2", [({"age": 1.0, "income": 10.0 * i}, 0.5, True, 1.0)])
    log.close()
    with pytest.raises(LogError, match=r"2 different input schemas.*v1.*v2.*model_version="):
        read_log_frame(path)
    v2 = read_log_frame(path, model_version="v2")
    assert v2["income"].tolist() == [0.0, 10.0, 20.0] and "purpose" not in v2.columns
    assert read_log_frame(path, model_version="v1")["request_id"].tolist() == [
        f"r{i}" for i in range(5)
    ]
    # the same schema under two versions: one frame, filtered by version on request
    fill(path, 4, version="v3")
    both = read_log_frame(path, model_version="v3")
    assert both["request_id"].tolist() == [f"r{i}" for i in range(4)]
    assert set(both["model_version"]) == {"v3"}
    assert issubclass(LogError, DataError)  # the CLI prints it without a traceback


LAYOUT1 = """
CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
    request_id TEXT NOT NULL, model_version TEXT NOT NULL, inputs TEXT NOT NULL,
    score REAL NOT NULL, decision TEXT NOT NULL, expected_value REAL);
INSERT INTO predictions (ts, request_id, model_version, inputs, score, decision,
    expected_value) VALUES (1.0, 'a', 'v1', '{"age": 30}', 0.5, 'true', 2.0);
"""


def test_a_log_of_the_old_layout_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(LAYOUT1)
    with pytest.raises(LogError, match=r"layout 1 .*Move the old file aside.*--log"):
        PredictionLog(path, FIELDS)
    with pytest.raises(LogError, match="layout 1"):
        read_log_frame(path)
    assert read_log(path)[0]["inputs"] == {"age": 30}  # the records reader still reads it
    with sqlite3.connect(path) as conn:  # and nothing was added to it
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"predictions", "sqlite_sequence"}


def test_a_missing_file_or_another_file_is_named(tmp_path):
    with pytest.raises(LogError, match="no prediction log at"):
        read_log_frame(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()  # reading never creates a file
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all" * 20)
    with pytest.raises(LogError, match="not a prediction log"):
        read_log_frame(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(LogError, match=r"not a valuegate prediction log .*\['t'\]"):
        PredictionLog(other, FIELDS)


def test_a_reopened_log_keeps_its_rows_and_seals_on(tmp_path):
    path = tmp_path / "log.sqlite"
    fill(path, 3, segment_rows=2)
    log = PredictionLog(path, FIELDS, segment_rows=2, background=False)
    log.append("again", "v1", [(record(5), 0.1, False, 1.0)])
    log.close()
    frame = read_log_frame(path)
    assert frame["request_id"].tolist() == ["r0", "r1", "r2", "again"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT sum(n_rows) FROM segments").fetchone()[0] == 4
    assert [r["request_id"] for r in read_log(path)] == ["r0", "r1", "r2", "again"]


WRITER = """
import sys, json
from valuegate.serving.log import PredictionLog

path, name, count, fields = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
log = PredictionLog(path, fields, segment_rows=16)  # sealing in its background thread
print("ready", flush=True)
sys.stdin.readline()  # go: the writers of a test start appending together
n = 0
while count < 0 or n < count:
    rows = [({"age": float(n), "purpose": "car", "amount": 1.0}, 0.5, True, 1.0),
            ({"age": None, "purpose": None, "amount": 2.0}, 0.4, False, 2.0)]
    log.append(f"{name}{n}", "v1", rows)
    n += 1
    print(n, flush=True)
log.close()
"""


def writers(path, names: list[str], count: int) -> list[subprocess.Popen]:
    """Writer processes, appending `count` requests each (-1: until killed), released
    together once every one has opened the log."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count), json.dumps(FIELDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for process in processes:
        assert process.stdout.readline() == "ready\n"
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    return processes


def test_a_killed_writer_leaves_every_acknowledged_request_once(tmp_path):
    path = tmp_path / "log.sqlite"
    (process,) = writers(path, ["r"], -1)
    acknowledged, sealed = 0, 0
    # kill it while it appends and its thread seals (16 rows a segment)
    while acknowledged < 400 or sealed < 10:
        acknowledged = int(process.stdout.readline())
        if acknowledged % 50 == 0 and path.exists():
            with (
                contextlib.closing(sqlite3.connect(path)) as conn,
                contextlib.suppress(sqlite3.OperationalError),  # not created yet
            ):
                sealed = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
    process.send_signal(signal.SIGKILL)
    process.wait()
    frame = read_log_frame(path)
    ids = frame["request_id"].tolist()
    requests = list(dict.fromkeys(ids))
    # every request acknowledged before the kill is there, whole, once (not in a segment
    # and again among the recent rows); the one in flight is all or nothing
    assert requests[:acknowledged] == [f"r{i}" for i in range(acknowledged)]
    assert requests == [f"r{i}" for i in range(len(requests))]
    assert len(ids) == 2 * len(requests)
    assert frame["age"].iloc[::2].tolist() == [float(i) for i in range(len(requests))]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM segments").fetchone()[0] >= sealed


def test_two_processes_append_to_one_log(tmp_path):
    path = tmp_path / "log.sqlite"
    n = 1500
    for process in writers(path, ["a", "b"], n):
        process.stdout.read()
        assert process.wait() == 0
    frame = read_log_frame(path)
    assert len(frame) == 2 * 2 * n
    for name in ("a", "b"):
        own = frame["request_id"][frame["request_id"].str.startswith(name)]
        # each writer's requests once each, both rows, in the order it logged them
        assert own.tolist() == [f"{name}{i}" for i in range(n) for _ in range(2)]
    # they wrote at the same time: their rows interleave
    first = frame["request_id"].str[0]
    assert (first != first.shift()).sum() > 10
    with sqlite3.connect(path) as conn:
        sealed = conn.execute("SELECT first_id, last_id FROM segments ORDER BY first_id")
        ranges = sealed.fetchall()
    # segments from both writers' threads, never overlapping
    assert len(ranges) >= 100
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))


@pytest.mark.slow  # builds a bundle and starts the CLI: ~10 s idle, ~55 s on a loaded machine
def test_serve_refuses_an_old_log_before_binding_the_port(tmp_path):
    from tests.conftest import tool_env
    from tests.deploy_helpers import make_bundle
    from valuegate.registry import Registry

    make_bundle(tmp_path / "registry" / "v1")
    Registry(tmp_path / "registry").promote("v1")
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as conn:
        conn.executescript(LAYOUT1)
    cmd = [
        str(Path(sys.executable).parent / "valuegate"), "serve", "--registry",
        str(tmp_path / "registry"), "--port", "1", "--log", str(old),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=tool_env(), capture_output=True, text=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "layout 1" in done.stderr and "--log PATH" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
