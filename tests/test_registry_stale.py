"""The registry removes what a killed writer left (its own temporary names only), and only
under its write lock: never while another process holds it (registry.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from valuegate.errors import ArtifactError
from valuegate.registry import Registry

# Killed mid-write by SIGKILL: the temporaries atomic_dir / atomic_path really leave.
KILLED_WRITER = """
import os, signal, sys
from valuegate.io import atomic_dir, atomic_path
root = sys.argv[1]
with atomic_path(root + "/champion.json") as tmp:
    tmp.write_text("{")
    with atomic_dir(root + "/v2") as d:
        (d / "pipeline.skops").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
"""

# Another writer: the registry's lock is an exclusive flock on its directory.
HOLDER = """
import fcntl, os, sys, time
fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def _hidden(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name.startswith(".")}


def test_the_next_write_removes_a_killed_writers_temporaries_and_nothing_else(tmp_path):
    registry = Registry(tmp_path / "reg")
    registry.ensure()
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(registry.root)])
    assert done.returncode == -signal.SIGKILL
    left = _hidden(registry.root)
    assert {n for n in left if n.startswith(".v2.")} and {
        n for n in left if n.startswith(".champion.json.")
    }, left
    (registry.root / ".v1.old.4242").mkdir()  # atomic_dir's previous bundle, moved aside
    (registry.root / ".budget.json.ab_cd123.tmp").write_text("{")
    keep = {".gitignore", ".v2.notes", ".other.abcd1234.tmp", ".v2.abcd1234.tmp.keep"}
    for name in keep:
        (registry.root / name).write_text("mine")
    (registry.root / "v2.abcd1234.tmp").mkdir()  # not hidden: not a temporary of ours

    registry.write_budget({"test_rows": {}})

    assert _hidden(registry.root) == keep
    assert (registry.root / "v2.abcd1234.tmp").is_dir()
    assert registry.budget() == {"test_rows": {}}
    assert registry.versions() == []


def test_nothing_is_removed_while_another_process_holds_the_lock(tmp_path):
    registry = Registry(tmp_path / "reg")
    registry.ensure()
    stale = registry.root / ".v3.zzzz9999.tmp"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(registry.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        stale.mkdir()  # as the holder would while writing v3
        started = time.monotonic()
        busy = r"being written by another process.*retry"
        with pytest.raises(ArtifactError, match=busy), registry.writing(wait=0.5):
            pass
        assert time.monotonic() - started >= 0.5
        assert stale.is_dir()  # the holder may be writing it
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel releases a killed holder's lock
        holder.wait()
    registry.ensure()
    assert not stale.exists()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    registry = Registry(tmp_path / "reg")
    with registry.writing(wait=0.2):
        registry.write_budget({"test_rows": {}})  # would wait on itself if not re-entrant
        with Registry(tmp_path / "reg").writing(wait=0.2):
            pass
    assert registry.budget() == {"test_rows": {}}


def test_a_failed_rollback_creates_no_registry(tmp_path):
    with pytest.raises(ArtifactError, match="nothing to roll back"):
        Registry(tmp_path / "none").rollback()
    assert not (tmp_path / "none").exists()
