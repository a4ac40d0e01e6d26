"""Shared fixtures: the repo's conf/ composed with Hydra's compose API, and throwaway
copies of the whole project (a git + DVC repo) for end-to-end runs.

The suite runs on pytest-xdist workers (`pytest -n auto`; `--dist loadfile` from
pyproject.toml: a file's tests run on one worker, in order, its module fixtures built
once). `pytest_collection_modifyitems` below hands the files out slow first; `ran_project`
is one full `dvc repro` shared by every worker (built by the first that needs it, under a
file lock).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

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


def compose_params(project: Path, overrides: list[str]) -> dict:
    """params.yaml of `project`'s conf/ + `overrides`, as `valuegate compose` writes it (in
    this process); returns the composed dict."""
    from valuegate.config.loading import compose_config, write_params

    raw = compose_config(project / "conf", overrides)
    write_params(raw, project / "params.yaml")
    return raw


def run_in_memory(project: Path, overrides: list[str], through: str = "evaluate"):
    """What `dvc exp run -S OVERRIDES... THROUGH` leaves in `project`, made in this
    process: params.yaml as `valuegate compose` writes it, the steps the stages run
    (`pipeline.run`, studies in the stages' journal) and their outputs written as the
    stages write them (`stages.outputs.write_result`). For tests whose subject is a later
    stage or command, not how DVC wires the earlier ones: a `dvc exp run` costs ~1 min of
    stage start-ups and DVC for the same files. Returns the validated config."""
    from valuegate.data import file_sha256, load_raw
    from valuegate.paths import TUNE_JOURNAL
    from valuegate.pipeline import run as run_pipeline
    from valuegate.stages.outputs import write_result

    config = validate(compose_params(project, overrides))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)  # data.path is relative to the project
        frame = load_raw(config.data)
        result = run_pipeline(
            config,
            frame,
            file_sha256(config.data.path),
            through=through,
            journal=project / TUNE_JOURNAL,
        )
    write_result(result, project)
    return config


@pytest.fixture
def compose():
    """compose(*overrides) -> validated Config from the repo's conf/."""

    def _compose(*overrides: str):
        return validate(compose_config(ROOT / "conf", overrides))

    return _compose


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


# The shared run's candidates are the example's with fewer trees (conf/model/ edited in the
# copy, so `dvc exp run` in a copy of it keeps them): a third of the fitting time of the two
# forests and boosted trees, in every test that reruns them. The tests check what the run
# writes and how stages rerun, which the tree count does not change; the baseline that goes
# forward (linear) and the gate's refusal do not depend on it. The unchanged candidates run
# end to end in README command 1's test (tests/test_init.py).
CHEAPER_CANDIDATES = {
    "conf/model/random_forest.yaml": ("n_estimators: 300", "n_estimators: 100"),
    "conf/model/hist_gradient_boosting.yaml": ("max_iter: 300", "max_iter: 100"),
}


def _build_ran_project(project: Path) -> Path:
    copy_project(project)
    for name, (old, new) in CHEAPER_CANDIDATES.items():
        text = (project / name).read_text()
        assert old in text, f"{name} no longer says {old!r}: update CHEAPER_CANDIDATES"
        (project / name).write_text(text.replace(old, new))
    run(["valuegate", "compose"], project)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run([*git, "commit", "-q", "-am", "tests: cheaper candidates"], project)
    run(["dvc", "repro"], project)
    return project


@pytest.fixture(scope="session")
def ran_project(tmp_path_factory) -> Path:
    """A project copy after one full `dvc repro` (shared read-only; copy it to mutate:
    `shutil.copytree(ran_project, tmp_path / "project", symlinks=True)` keeps its git
    history, DVC cache and outputs, so a test reruns only the stages it changes).

    One run for the whole session, and for every xdist worker: the first worker that needs
    it builds it in the run's shared temp directory under a file lock, the others wait for
    it and reuse it (a full run costs minutes; building it once per worker would too)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _build_ran_project(tmp_path_factory.mktemp("ran") / "project")
    shared = tmp_path_factory.getbasetemp().parent / "ran"
    done = shared / "built"
    with FileLock(str(shared) + ".lock"):
        if not done.is_file():
            shutil.rmtree(shared, ignore_errors=True)  # a worker that failed half-way
            _build_ran_project(shared / "project")
            done.touch()
    return shared / "project"


# The order the tests are handed to workers in (and run in without xdist): the first test
# that needs the shared run first (one worker builds it), then the slow tests that need no
# shared run (the other worker is busy meanwhile), then the other slow tests, then the fast
# ones. Within each group the long files of _LONG_FILES go first, longest first (the rest
# keep module order): with `--dist loadfile` a file is one worker's unit, and a long one
# handed out last leaves the other worker idle at the end.
_FIRST_SHARED, _INDEPENDENT_SLOW, _SHARED_SLOW, _FAST = range(4)

# Seconds per file on a quiet machine (`pytest -n auto --durations=0`, session 8), longest
# first; a hint for the order only (a file not listed, or renamed, just keeps its place).
_LONG_FILES = (
    "test_tuning_pipeline.py",  # ~200 s
    "test_retrain_faults.py",  # ~165 s
    "test_deploy_pipeline.py",  # ~190 s: the deploy runs and the forced rerun of every stage
    "test_bad_inputs.py",  # ~135 s
    "test_pipeline.py",  # ~100 s: the queued grid
    "test_scoring_inputs.py",  # ~85 s
    "test_assess.py",  # ~85 s
    "test_assess_leaks.py",  # ~85 s
    "test_init.py",  # ~80 s: README command 1
)


def _rank(item: pytest.Item) -> int:
    if item.get_closest_marker("slow") is None:
        return _FAST
    return _SHARED_SLOW if "ran_project" in item.fixturenames else _INDEPENDENT_SLOW


def _length(item: pytest.Item) -> int:
    name = item.path.name
    return _LONG_FILES.index(name) if name in _LONG_FILES else len(_LONG_FILES)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ranks = [_rank(item) for item in items]
    if _SHARED_SLOW in ranks:
        ranks[ranks.index(_SHARED_SLOW)] = _FIRST_SHARED
    # stable: module order kept within a group and length; a file's fast tests follow its
    # slow ones on the same worker (the file is the unit), wherever its first test lands
    order = sorted(range(len(items)), key=lambda i: (ranks[i], _length(items[i])))
    items[:] = [items[i] for i in order]
    for item, rank in zip(items, [ranks[i] for i in order], strict=True):
        # A fast module runs on one worker (its module fixtures are built once); a slow test
        # is a unit of its own unless its module groups it (e.g. a module-scoped pipeline
        # run its tests share: `pytestmark = [pytest.mark.xdist_group("name"), ...]`).
        if rank == _FAST and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
