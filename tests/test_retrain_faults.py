"""Faults in retraining, end to end (`valuegate retrain`, the real `dvc exp run`): a retrain
SIGKILLed while training, tuning and packaging leaves the champion serving and the
registry consistent, and a rerun completes; a window whose new rows fail the assessment
(a planted leak) never reaches the deploy gate, so nothing is promoted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import copy_project, run, run_in_memory, tool_env
from valuegate.registry import STALE, Registry

# Small and quick: 1,500 people per year, one candidate, two trials, no seed refits (the
# seed spread is tested in tests/test_retrain_package.py; here it would only add fits).
OVERRIDES = [
    "+experiment=employment",
    "model=[xgboost]",
    "model.xgboost.params.n_estimators=40",
    "tune.n_trials=2",
    "tune.n_folds=2",
    "gate.cross_fit.folds=3",
    "gate.cross_fit.choice_resamples=50",
    "gate.n_resamples=200",
    "deploy.n_resamples=200",
    "deploy.seed_stability.seeds=0",
    "assess.n_folds=2",
    # 1,500 people a year repeat whole rows (ACS codes): drop the copies from valid and test
    "assess.remedies.drop_duplicates=true",
    # on 1,500 rows a year no model reaches the example's targets; the deploy gate's
    # comparison with the champion is what this test is about
    "objective.good_enough.value_per_period=null",
    "objective.good_enough.metrics=[]",
]
PER_YEAR = 1500


def _small_employment(project: Path) -> pd.DataFrame:
    """Rewrite the copy's employment file as 1,500 rows of 2015 and of 2016; return 1,500
    rows of 2017 (not in the file: the window to append)."""
    path = project / "data/raw/employment_ma.parquet"
    full = pd.read_parquet(path)
    parts = {y: full[full["year"] == y].head(PER_YEAR) for y in (2015, 2016, 2017)}
    pd.concat([parts[2015], parts[2016]], ignore_index=True).to_parquet(path, index=False)
    return parts[2017].reset_index(drop=True)


def _retrain(project: Path, *args: str, kill_when=None) -> tuple[int, str, str]:
    """`valuegate retrain ...` in `project`; `kill_when(line, project)`: SIGKILL the whole
    process group (the command, DVC and the stage) once it returns True."""
    cmd = [sys.executable, "-m", "valuegate.cli", "retrain", *args, *OVERRIDES]
    proc = subprocess.Popen(
        cmd,
        cwd=project,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    err: list[str] = []
    killed = threading.Event()

    def read_err() -> None:
        for line in proc.stderr:
            err.append(line)
            if kill_when is not None and not killed.is_set() and kill_when(line, project):
                os.killpg(proc.pid, signal.SIGKILL)
                killed.set()

    reader = threading.Thread(target=read_err)
    reader.start()
    out = proc.stdout.read()
    proc.wait(timeout=1800)
    reader.join()
    if kill_when is not None:
        assert killed.is_set(), "the kill point was never reached:\n" + "".join(err)[-3000:]
    return proc.returncode, out, "".join(err)


def _after_stage(stage: str, delay: float):
    def when(line: str, project: Path) -> bool:
        if f"Running stage '{stage}'" not in line:
            return False
        time.sleep(delay)
        return True

    return when


def _during_registry_write(line: str, project: Path) -> bool:
    """Once package runs: the moment it writes in the registry (the budget ledger or a
    bundle's temporary directory), else after 20 s."""
    if "Running stage 'package'" not in line:
        return False
    root = project / "models/registry/employment"
    budget = root / "budget.json"
    before = budget.stat().st_mtime_ns if budget.exists() else None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(p.name.startswith(".") for p in root.iterdir()):
            return True
        if budget.exists() and budget.stat().st_mtime_ns != before:
            return True
        time.sleep(0.002)
    return True


def _consistent(project: Path, champion: str) -> Registry:
    registry = Registry(project / "models/registry/employment")
    deploy = project / "reports/deploy.json"
    said = json.loads(deploy.read_text()).get("reason") if deploy.is_file() else None
    assert registry.champion == champion, said
    registry.load("champion")  # loads and verifies every file's hash
    for version in registry.versions():
        assert registry.integrity(version) == ("ok", None), version
    registry.budget()  # readable
    return registry


def _champion_in_memory(project: Path) -> None:
    """The champion v1 (trained on 2015) as the stages write it, in this process: the
    pipeline through evaluate (tests/conftest.py `run_in_memory`), then the package stage's
    own `main`. What the retrains need is a champion in the registry; the DVC runs under
    test are the retrains' (a `dvc exp run` here cost ~1 min of CPU more: stage start-ups
    and DVC, for the same files)."""
    from valuegate.stages import package

    run_in_memory(project, OVERRIDES)
    package.main([])


@pytest.mark.slow
def test_killed_retrains_leave_the_champion_and_a_leaky_window_is_never_promoted(
    tmp_path, monkeypatch
):
    project = copy_project(tmp_path / "project")
    new_2017 = _small_employment(project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "small"], project)
    monkeypatch.chdir(project)  # the stages' paths are relative to the project
    _champion_in_memory(project)
    _consistent(project, "v1")  # the champion, trained on 2015

    for when in (
        _after_stage("train@xgboost", 1.0),
        _after_stage("tune", 2.0),
        _during_registry_write,
    ):
        code, _out, err = _retrain(project, "--window", "2016", kill_when=when)
        assert code == -signal.SIGKILL, err[-2000:]
        _consistent(project, "v1")

    code, out, err = _retrain(project, "--window", "2016")
    assert code == 0, err[-3000:]
    assert out.startswith("Retrained on the expanding window up to 2016"), out
    registry = Registry(project / "models/registry/employment")
    _consistent(project, registry.champion)
    # what the kill during the registry write left is gone (registry.py removes it)
    assert not [p.name for p in registry.root.iterdir() if STALE.match(p.name)]

    # A leak planted in the appended 2017 window: a feature that is the label.
    champion = registry.champion
    leaky = new_2017.copy()
    leaky["AGEP"] = np.where(leaky["employed"] == 1, 40, 70)
    leaky.to_csv(tmp_path / "labels.csv", index=False)
    code, out, err = _retrain(
        project,
        "--window",
        "2017",
        "--labels",
        str(tmp_path / "labels.csv"),
        "--rule",
        "sliding",
        "retrain.window.periods=1",
    )
    assert code == 3, err[-3000:]
    assert "failed the assessment" in err and "Traceback" not in err.split("valuegate:")[-1]
    assert out == ""
    _consistent(project, champion)
    assert (project / "appended/employment/window-2017.parquet").is_file()
