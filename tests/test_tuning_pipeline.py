"""End to end: the gate passes on data a linear model cannot learn, tuning runs, survives
SIGKILL, and the command-line sweep refuses or runs according to the gate.

The module's runs before the last test are made in this process (`run_in_memory`: the
pipeline's steps, their outputs written as the stages write them); the tune stage runs
as its own process in the SIGKILL and two-worker tests, the `valuegate tune` command in
the sweep tests, and every stage under `dvc exp run` in the new-split test."""

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

from tests import conftest
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
    # The untuned candidate stays the weak one it is meant to be here (60 trees at rate
    # 0.05, depth 4, no early stopping: it passes the gate, and tuning beats it); with the
    # robust defaults it can earn as much as a 6-trial study's best.
    "model.xgboost.params.max_depth=4",
    "model.xgboost.early_stopping=null",
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


def compose_params(project: Path, settings: list[str]) -> dict:
    """params.yaml of SETTINGS + `settings`, as `valuegate compose` writes it."""
    return conftest.compose_params(project, [*SETTINGS, *settings])


def run_in_memory(project: Path, settings: list[str], through: str) -> None:
    """What `dvc exp run -S SETTINGS + settings ... <through>` leaves, made in this process
    (tests/conftest.py); the stages under DVC run in the new-split test's full `dvc exp run`."""
    conftest.run_in_memory(project, [*SETTINGS, *settings], through)


@pytest.fixture(scope="module")
def tuned_project(tmp_path_factory) -> Path:
    """One run through evaluate (what the module's tests read; `run_in_memory`), shared,
    in order, by the module's tests: each needs only this run, plus what it does itself."""
    project = tmp_path_factory.mktemp("xor") / "project"
    copy_project(project)
    write_xor(project)
    run(["git", "add", "data/raw/xor.csv"], project)
    run_in_memory(project, ["tune.n_trials=6"], "evaluate")
    return project


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
def test_gate_passes_and_tuned_model_goes_forward(tuned_project: Path):
    gate = json.loads((tuned_project / "reports" / "gate.json").read_text())
    assert gate["tuning_allowed"] and gate["best_passing"] == "xgboost"
    decision = gate["candidates"]["xgboost"]
    assert decision["ci_lower"] > 0 and "tuning allowed" in decision["reason"]
    tune = json.loads((tuned_project / "reports" / "tune.json").read_text())
    study = tune["studies"]["xgboost"]
    assert study["trials_complete"] + study["trials_pruned"] == 6
    assert study["stop_reason"].startswith("n_trials")
    assert set(study["best_params"]) == {"max_depth", "learning_rate"}
    # 900 training rows: below tune.sample_rows, every row tuned; no trial over its budget
    assert study["sample"] is None and study["trials_over_budget"] == 0
    metrics = json.loads((tuned_project / "metrics" / "evaluate.json").read_text())
    assert "xgboost_tuned" in metrics["models"]
    final = metrics["final"]
    full = json.loads((tuned_project / "reports" / "evaluation.json").read_text())
    assert full["final"]["model"] == "xgboost_tuned"
    assert final["valid_uplift_ci_lower"] <= final["valid_uplift_ci_upper"]
    report = json.loads((tuned_project / "reports" / "evaluation.json").read_text())
    assert report["final"]["test"]["split"] == "test"
    assert report["final"]["test"]["threshold"] == report["models"]["xgboost_tuned"]["threshold"]
    trials = pd.read_csv(tuned_project / "plots" / "tune" / "xgboost.csv")
    assert len(trials) >= 6 and trials["best_so_far"].is_monotonic_increasing


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
def test_sigkill_mid_study_then_rerun_continues_the_same_study(tuned_project: Path):
    project = tuned_project
    compose_params(project, ["tune.n_trials=14"])
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
    tune = json.loads((project / "reports" / "tune.json").read_text())
    assert (
        tune["studies"]["xgboost"]["trials_complete"] + tune["studies"]["xgboost"]["trials_pruned"]
        == 14
    )


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
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
    summary = json.loads(result.stdout[: result.stdout.index("To train with")])
    assert summary["forced"] is False
    assert summary["trials_complete"] + summary["trials_pruned"] == 3
    assert set(summary["best_params"]) == {"max_depth", "learning_rate"}
    assert 2 <= summary["best_params"]["max_depth"] <= 3  # the override narrowed the range
    line = next(x for x in result.stdout.splitlines() if x.startswith("To train with"))
    assert "-S model.xgboost.params.max_depth=" in line
    # Every override the user gave is kept, quoted for the shell.
    assert "-S data.name=xor" in line and "-S tune.n_trials=3" in line
    assert "-S '+model.xgboost.search_space={max_depth:" in line
    # A model, not only settings; other overrides than params.yaml's: written, not valued.
    fit = json.loads((tuned_project / "models/tuned/xgboost_tuned/fit.json").read_text())
    assert fit["forced"] is False and fit["study"] == summary["study"]
    # status lines go to stderr (stdout holds the result a user may pipe)
    assert "not valued: params.yaml differs in tune, model.xgboost" in result.stderr


def test_cli_sweep_keeps_an_experiment_preset_in_the_printed_command():
    from valuegate.cli import pipeline_command

    line = pipeline_command(
        ["+experiment=diabetes", "model=xgboost", "model.xgboost.params.max_depth=3"],
        {"max_depth": 5},
        "xgboost",
    )
    assert line == (
        "dvc exp run -S +experiment=diabetes -S model=xgboost -S model.xgboost.params.max_depth=5"
    )


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
def test_cli_sweep_with_another_experiment_refuses_in_one_line(
    tuned_project: Path, monkeypatch, capsys
):
    """It composes its own config and refuses data and a gate record made from another."""
    from tests.inprocess import InProcess

    cli = [sys.executable, "-m", "valuegate.cli", "tune"]
    result = run([*cli, "+experiment=diabetes", "model=xgboost"], tuned_project, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data/assessed was prepared from another config (data differs" in result.stderr
    assert "dvc exp run -S +experiment=diabetes -S model=xgboost" in result.stderr
    # Same data, another objective: the gate's record does not apply. (In this process,
    # through the command's entry point: the real process's exit is checked just above.)
    here = InProcess(monkeypatch, capsys)
    result = here.cli(["tune", *SETTINGS, "objective.volume=123"], tuned_project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "reports/gate.json was produced from another config/data (objective differs)" in (
        result.stderr
    )


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
def test_two_worker_processes_finish_exactly_the_requested_trials(tuned_project: Path):
    project = tuned_project
    # A fresh study (4 folds) long enough that the second worker starts before it ends (it
    # is spawned when the study starts, so its imports are the first worker's head start).
    compose_params(project, ["tune.n_jobs=2", "tune.n_trials=40", "tune.n_folds=4"])
    run([sys.executable, "-m", "valuegate.stages.tune"], project)
    tune = json.loads((project / "reports" / "tune.json").read_text())
    study = optuna.load_study(
        study_name=tune["studies"]["xgboost"]["study"],
        storage=open_storage(None, project / "tuning" / "optuna.journal"),
    )
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 40
    assert len({t.number for t in finished}) == 40
    assert {t.user_attrs.get("worker") for t in finished} == {0, 1}


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
def test_forced_cli_sweep_writes_a_tuned_model_that_show_lists(tuned_project: Path):
    """`valuegate tune --force` used to print params only (models/tuned stayed empty): now
    it refits the best params as the tune stage does, records the study as forced, and the
    evaluate stage values it, so `valuegate show` lists it with its value."""
    project = tuned_project
    # An uplift no model earns: the gate refuses, so the tune step skips and replaces the
    # tuned model the module's run wrote with a note (what `dvc exp run ... tune` leaves).
    forcing = ["tune.n_trials=3", "objective.min_uplift=1000000000"]
    run_in_memory(project, forcing, "tune")
    settings = [*SETTINGS, *forcing]
    assert not json.loads((project / "reports" / "gate.json").read_text())["tuning_allowed"]
    assert not (project / "models" / "tuned" / "xgboost_tuned").exists()

    cli = [sys.executable, "-m", "valuegate.cli"]
    result = run([*cli, "tune", "--force", *settings], project)
    assert "wrote models/tuned/xgboost_tuned/" in result.stderr
    fit = json.loads((project / "models" / "tuned" / "xgboost_tuned" / "fit.json").read_text())
    assert fit["forced"] is True and fit["tuned_from"] == "xgboost"
    assert "operating_point" in fit and "lineage" in fit  # the stage's own refit path
    tune = json.loads((project / "reports" / "tune.json").read_text())
    assert tune["forced"] is True and tune["studies"]["xgboost"]["forced"] is True
    assert tune["written_by"] == "valuegate tune" and "lineage" in tune

    shown = run([*cli, "show"], project).stdout
    line = next(x for x in shown.splitlines() if x.startswith("xgboost_tuned"))
    assert line.split()[1] == "tuned"
    report = json.loads((project / "reports" / "evaluation.json").read_text())
    value = report["models"]["xgboost_tuned"]["value_per_period"]
    assert isinstance(value, float)


@pytest.mark.xdist_group("tuned_project")  # shares, in order, the module's run
def test_a_new_split_after_tuning_reruns_cleanly(tuned_project: Path):
    """After a run that tuned, a run with other split fractions and seed used to fail in
    the gate (the old tune record listed tuned models scored on the old split). The one
    `dvc exp run` of the module: every stage under DVC (package, score, report, monitor
    with a tuned model too)."""
    project = tuned_project
    first = json.loads((project / "reports" / "tune.json").read_text())
    assert first["studies"]["xgboost"]["folds"]["kind"] == "kfold"
    assert (project / "models" / "tuned" / "xgboost_tuned").is_dir()  # a tuned model left
    new_split = ("seed=7", "data.split.train=0.5", "data.split.valid=0.3", "tune.n_trials=2")
    run(["dvc", "exp", "run", *sets(*new_split)], project)
    gate = json.loads((project / "reports" / "gate.json").read_text())
    assert gate["rows"] == 450  # 30% of 1,500: the new split was gated
    tune = json.loads((project / "reports" / "tune.json").read_text())
    assert tune["lineage"]["rows"] == gate["lineage"]["rows"] != first["lineage"]["rows"]
    run(["dvc", "repro"], project)  # nothing stale left behind: plain repro is clean too
