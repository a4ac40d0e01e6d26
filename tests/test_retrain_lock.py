"""A retrain killed while DVC rewrites dvc.lock (in place, stage after stage) must not
leave the project unusable: the next retrain puts back the lock of before the killed run.
(The kills themselves, end to end: tests/test_retrain_faults.py; whether a kill lands in
DVC's write is timing, so the state it leaves is built here.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from valuegate.retrain.command import (
    LOCK_GUARD,
    guarded_lock,
    restore_lock_of_a_killed_run,
)

LOCK = "schema: '2.0'\nstages:\n  prepare:\n    cmd: python -m valuegate.stages.prepare\n"
TRUNCATED = LOCK + "  assess:\n"  # what a kill during DVC's write leaves


def test_a_run_that_ends_leaves_its_own_lock_and_no_guard(tmp_path: Path):
    (tmp_path / "dvc.lock").write_text(LOCK)
    with guarded_lock(tmp_path):
        assert (tmp_path / LOCK_GUARD / "dvc.lock").read_text() == LOCK
        (tmp_path / "dvc.lock").write_text(LOCK + "  assess:\n    cmd: x\n")
    assert (tmp_path / "dvc.lock").read_text().endswith("cmd: x\n")  # DVC's, kept
    assert not any((tmp_path / LOCK_GUARD).iterdir())
    assert not restore_lock_of_a_killed_run(tmp_path)


@pytest.mark.parametrize("had_lock", [True, False])
def test_the_lock_a_killed_run_truncated_is_put_back_by_the_next(tmp_path: Path, had_lock):
    if had_lock:
        (tmp_path / "dvc.lock").write_text(LOCK)
    guarded_lock(tmp_path).__enter__()  # and never left: the process was killed inside
    (tmp_path / "dvc.lock").write_text(TRUNCATED)

    assert restore_lock_of_a_killed_run(tmp_path)
    if had_lock:
        assert (tmp_path / "dvc.lock").read_text() == LOCK
    else:
        assert not (tmp_path / "dvc.lock").exists()
    assert not restore_lock_of_a_killed_run(tmp_path)  # once only


def test_the_next_retrain_restores_before_it_runs(tmp_path: Path):
    (tmp_path / "dvc.lock").write_text(LOCK)
    guarded_lock(tmp_path).__enter__()  # killed
    (tmp_path / "dvc.lock").write_text(TRUNCATED)
    with guarded_lock(tmp_path):  # what run_command wraps `dvc exp run` in
        assert (tmp_path / "dvc.lock").read_text() == LOCK
        assert (tmp_path / LOCK_GUARD / "dvc.lock").read_text() == LOCK


def test_the_lock_the_killed_run_staged_is_unstaged(tmp_path: Path):
    """A committed lock (a champion run the user committed): the killed `dvc exp run` had
    staged its own lock in git's index. Put back in the work tree only, the lock equals
    the commit's while the index holds the killed run's, and DVC's next `exp run` failed
    ("Stash apply resulted in merge conflicts"): the index entry is put back too."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e"]
    (tmp_path / "dvc.lock").write_text(LOCK)
    for step in (["init", "-q"], ["add", "dvc.lock"], ["commit", "-qm", "run"]):
        subprocess.run([*git, *step], cwd=tmp_path, check=True)
    guarded_lock(tmp_path).__enter__()  # killed
    (tmp_path / "dvc.lock").write_text(TRUNCATED)
    subprocess.run(["git", "add", "dvc.lock"], cwd=tmp_path, check=True)  # as DVC stages it

    assert restore_lock_of_a_killed_run(tmp_path)
    assert (tmp_path / "dvc.lock").read_text() == LOCK
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=tmp_path, capture_output=True, text=True
    )
    assert staged.stdout == ""  # the index is the commit's again
