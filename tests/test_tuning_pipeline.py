"""End to end: the gate passes on data a linear model cannot learn, tuning runs, survives
SIGKILL, and the command-line sweep refuses or runs according to the gate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tests.conftest import copy_project, run, tool_env
from valuegate.tuning import open_storage

pytestmark = pytest.mark.slow

SETTINGS = [
    "data.name=xor",
    "data.path=data/raw/xor.csv",
    "data.target=label",
    "data.positive_label=bad",
    "data.amount_column=null",
    "model=xgboost",
    "model.xgboost.params.n_estimators=60",
    "model.xgboost.params.n_jobs=1",
    # `~` then `+` replaces the whole search space (a plain `=` would merge into it).
    "~model.xgboost.search_space",
    "+model.xgboost.search_space={max_depth: {type: int, low: 2, high: 6}, "
    "learning_rate: {type: float, low: 0.05, high: 0.5, log: true}}",
    "tune.n_folds=3",
    "tune.patience=50",
    "gate.n_resamples=300",
]


def write_xor(project: Path, rows: int = 1500) -> None:
    """Bad iff two features share a sign: invisible to a linear model, easy for trees."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    bad = (a * b > 0) ^ (rng.random(rows) < 0.05)
    frame = pd.DataFrame(
        {"a": a, "b": b, "noise": rng.normal(size=rows), "label": np.where(bad, "bad", "good")}
    )
    frame.to_csv(project / "data" / "raw" / "xor.csv", index=False)


def sets(*extra: str) -> list[str]:
    out: list[str] = []
    for item in [*SETTINGS, *extra]:
        out += ["-S", item]
    return out


def finished_trials(project: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(None, project / "tuning" / "optuna.journal")
    (summary,) = storage.get_all_studies()
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


@pytest.fixture(scope="module")
def tuned_project(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("xor") / "project"
    copy_project(project)
    write_xor(project)
    run(["git", "add", "data/raw/xor.csv"], project)
    run(["dvc", "exp", "run", *sets("tune.n_trials=6")], project)
    return project


def test_gate_passes_and_tuned_model_goes_forward(tuned_project: Path):
    gate = json.loads((tuned_project / "metrics" / "gate.json").read_text())
    assert gate["tuning_allowed"] and gate["best_passing"] == "xgboost"
    decision = gate["candidates"]["xgboost"]
    assert decision["ci_lower"] > 0 and "tuning allowed" in decision["reason"]
    tune = json.loads((tuned_project / "metrics" / "tune.json").read_text())
    study = tune["studies"]["xgboost"]
    assert study["trials_complete"] + study["trials_pruned"] == 6
    assert study["stop_reason"].startswith("n_trials")
    assert set(study["best_params"]) == {"max_depth", "learning_rate"}
    metrics = json.loads((tuned_project / "metrics" / "evaluate.json").read_text())
    assert "xgboost_tuned" in metrics["models"]
    final = metrics["final"]
    assert final["model"] == "xgboost_tuned"
    assert final["valid_uplift_ci_lower"] <= final["valid_uplift_ci_upper"]
    report = json.loads((tuned_project / "reports" / "evaluation.json").read_text())
    assert report["final"]["test"]["split"] == "test"
    assert report["final"]["test"]["threshold"] == report["models"]["xgboost_tuned"]["threshold"]
    trials = pd.read_csv(tuned_project / "plots" / "tune" / "xgboost.csv")
    assert len(trials) >= 6 and trials["best_so_far"].is_monotonic_increasing


def test_sigkill_mid_study_then_rerun_continues_the_same_study(tuned_project: Path):
    project = tuned_project
    compose = [sys.executable, "-m", "valuegate.cli", "compose", *SETTINGS, "tune.n_trials=14"]
    run(compose, project)
    before_run = {t.number for t in finished_trials(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuegate.stages.tune"],
        cwd=project,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(finished_trials(project)) < len(before_run) + 3:
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {t.number: t.value for t in finished_trials(project)}
    assert len(kept) >= len(before_run) + 3
    run([sys.executable, "-m", "valuegate.stages.tune"], project)
    after = {t.number: t.value for t in finished_trials(project)}
    assert len(after) == 14
    assert all(after[n] == v for n, v in kept.items())
    tune = json.loads((project / "metrics" / "tune.json").read_text())
    assert (
        tune["studies"]["xgboost"]["trials_complete"] + tune["studies"]["xgboost"]["trials_pruned"]
        == 14
    )


def test_cli_sweep_runs_when_the_gate_passed(tuned_project: Path):
    result = run(
        [
            sys.executable,
            "-m",
            "valuegate.cli",
            "tune",
            *SETTINGS,
            "tune.n_trials=3",
            "model.xgboost.search_space.max_depth={type: int, low: 2, high: 3}",
        ],
        tuned_project,
    )
    summary = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert summary["forced"] is False
    assert summary["trials_complete"] + summary["trials_pruned"] == 3
    assert set(summary["best_params"]) == {"max_depth", "learning_rate"}
    assert 2 <= summary["best_params"]["max_depth"] <= 3  # the override narrowed the range
    assert "dvc exp run -S model.xgboost.params.max_depth=" in result.stdout


def test_two_worker_processes_finish_exactly_the_requested_trials(tuned_project: Path):
    project = tuned_project
    compose = [sys.executable, "-m", "valuegate.cli", "compose", *SETTINGS]
    # A fresh study (4 folds) long enough that the second worker starts before it ends.
    run([*compose, "tune.n_jobs=2", "tune.n_trials=40", "tune.n_folds=4"], project)
    run([sys.executable, "-m", "valuegate.stages.tune"], project)
    tune = json.loads((project / "metrics" / "tune.json").read_text())
    study = optuna.load_study(
        study_name=tune["studies"]["xgboost"]["study"],
        storage=open_storage(None, project / "tuning" / "optuna.journal"),
    )
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 40
    assert len({t.number for t in finished}) == 40
    assert {t.user_attrs.get("worker") for t in finished} == {0, 1}
