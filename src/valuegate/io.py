"""Atomic file writes: a reader (or a crash) never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(path: Path, directory: bool = False) -> None:
    """The mode `open`/`mkdir` would have given (0666/0777 less the umask): mkstemp and
    mkdtemp create 0600/0700, which another user (a container's `USER nobody`) cannot read."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_current_umask())


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Flush `tmp` to disk, rename it over `target`, and make the rename durable."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _normal_mode(tmp)
        yield tmp
        _move_into_place(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


PARTIAL = ".valuegate-partial-"


def _partial_name(target: Path, pid: int) -> Path:
    return target.with_name(f".{target.name}{PARTIAL}{pid}.tmp")


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Delete what a killed writer of `path` left (`.NAME.valuegate-partial-PID.tmp` whose
    process is gone); return the removed paths. A live writer's file is kept."""
    target = Path(path)
    removed = []
    for partial in target.parent.glob(f".{glob.escape(target.name)}{PARTIAL}*.tmp"):
        pid_text = partial.name[len(f".{target.name}{PARTIAL}") : -len(".tmp")]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # that process still runs (perhaps writing): not ours to remove
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
            removed.append(partial)
    return removed


@contextlib.contextmanager
def partial_path(path: str | Path) -> Iterator[Path]:
    """Like `atomic_path`, for long writes (batch scoring): the temporary file is named
    `.NAME.valuegate-partial-PID.tmp`, hidden, plainly unfinished, and removed by the
    next writer of `path` (`remove_stale_partials`) if this process is killed."""
    target = Path(path)
    tmp = _partial_name(target, os.getpid())
    try:
        yield tmp
        _move_into_place(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _significant(value: Any, digits: int) -> Any:
    if isinstance(value, float | np.floating):
        value = float(value)
        return (
            value if value != value or value in (np.inf, -np.inf) else float(f"{value:.{digits}g}")
        )
    if isinstance(value, dict):
        return {k: _significant(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_significant(v, digits) for v in value]
    return value


def to_json(data: Any, digits: int = 10) -> str:
    """JSON with floats at `digits` significant digits: multithreaded estimators sum in
    varying order, and the last bits must not make two identical runs differ."""
    return json.dumps(_significant(data, digits), indent=2, default=_json_default) + "\n"


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, to_json(data))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces `path` as a whole."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _normal_mode(tmp, directory=True)
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
