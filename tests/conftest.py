"""Shared fixtures: the repo's conf/ composed with Hydra's compose API, and throwaway
copies of the whole project (a git + DVC repo) for end-to-end runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from valuegate.config import compose_config
from valuegate.config.loading import validate

ROOT = Path(__file__).resolve().parents[1]
SKIP_PARTS = {".venv", ".git", "data/prepared", "models", "metrics", "plots", "bench/results"}


def tool_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's `python`, `dvc` and `valuegate`."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("DVC_EXP_BASELINE_REV", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    keep = []
    for name in listed:
        if any(name == p or name.startswith(p + "/") for p in SKIP_PARTS):
            continue
        if (ROOT / name).is_file():
            keep.append(name)
    return keep


def copy_project(dest: Path) -> Path:
    """A fresh git repo holding the project's files (no outputs), as a clone would."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run(["git", "init", "-q", "-b", "main"], dest)
    run([*git, "add", "-A"], dest)
    run([*git, "commit", "-q", "-m", "project copy"], dest)
    return dest


@pytest.fixture
def compose():
    """compose(*overrides) -> validated Config from the repo's conf/."""

    def _compose(*overrides: str):
        return validate(compose_config(ROOT / "conf", overrides))

    return _compose


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def ran_project(tmp_path_factory) -> Path:
    """A project copy after one full `dvc repro` (shared read-only; copy it to mutate).
    Session-wide: test_pipeline and test_reproducible share the one run."""
    project = copy_project(tmp_path_factory.mktemp("ran") / "project")
    run(["dvc", "repro"], project)
    return project
