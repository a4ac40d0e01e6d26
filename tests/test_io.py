"""Atomic writes leave files and folders with the modes a plain write would (umask)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from valuegate.io import atomic_dir, atomic_write_json, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_and_dirs_are_readable_by_others(tmp_path: Path, umask_022) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"a": 1})
    with atomic_dir(tmp_path / "bundle") as tmp:
        (tmp / "model.bin").write_bytes(b"1")
    assert mode(tmp_path / "a.txt") == 0o644
    assert mode(tmp_path / "b.json") == 0o644
    assert mode(tmp_path / "bundle") == 0o755
    assert mode(tmp_path / "bundle" / "model.bin") == 0o644


def test_a_stricter_umask_is_respected(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.txt") == 0o600
    assert mode(tmp_path / "d") == 0o700


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d"):
        raise RuntimeError("boom")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == []
