"""End to end: the real `dvc repro` / `dvc exp run` in a throwaway copy of the project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import run

pytestmark = pytest.mark.slow

MODELS = ["dummy", "linear", "xgboost", "random_forest", "hist_gradient_boosting"]


@pytest.fixture
def scratch(ran_project: Path, tmp_path: Path) -> Path:
    """An independent copy of `ran_project` (git history, DVC cache and outputs)."""
    return Path(shutil.copytree(ran_project, tmp_path / "project", symlinks=True))


def read_metrics(project: Path) -> dict:
    return json.loads((project / "metrics" / "evaluate.json").read_text())


def test_repro_values_every_model(ran_project: Path):
    metrics = read_metrics(ran_project)
    assert list(metrics["models"]) == MODELS
    report = json.loads((ran_project / "reports" / "evaluation.json").read_text())
    best_baseline = report["best_baseline"]
    for name, record in metrics["models"].items():
        assert record["value_per_period"] == pytest.approx(
            metrics["models"][best_baseline]["value_per_period"] + record["uplift"]
        )
        # the dummy (one score) acts on every case or none: no threshold (issue 12); the
        # word is in the report (metrics hold numbers only)
        if "threshold" in record:
            assert 0.0 <= record["threshold"] <= 1.0
        else:
            assert report["models"][name]["acts"] in ("always", "never")
        assert 0.0 <= record["roc_auc"] <= 1.0
    assert metrics["models"]["linear"]["roc_auc"] > 0.7  # a real signal was learnt
    for kind in ("value_threshold", "roc", "pr", "calibration"):
        found = (ran_project / "plots" / "evaluate" / kind).glob("*.csv")
        assert {p.stem for p in found} == set(MODELS)


def test_dummy_value_matches_a_hand_computation(ran_project: Path):
    """The dummy scores every applicant alike, so the best it can do is to approve all
    or reject all; value both from the validation split directly."""
    params = yaml.safe_load((ran_project / "params.yaml").read_text())
    outcomes, volume = params["objective"]["outcomes"], params["objective"]["volume"]
    valid = pd.read_parquet(ran_project / "data" / "prepared" / "valid.parquet")
    bad = int((valid["creditability"] == "bad").sum())
    good = len(valid) - bad
    approve_all = (bad * outcomes["fn"] + good * outcomes["tn"]) / len(valid) * volume
    reject_all = (bad * outcomes["tp"] + good * outcomes["fp"]) / len(valid) * volume
    dummy = read_metrics(ran_project)["models"]["dummy"]
    assert dummy["value_per_period"] == pytest.approx(max(approve_all, reject_all))


def test_exp_run_set_param_selects_retrains_only_that_candidate_and_a_strict_gate_fails(
    scratch: Path,
):
    """`-S model=[...]` selects a subset of candidates, and a changed param retrains only
    its candidate: xgboost (max_depth changed) is retrained, random_forest (selected,
    unchanged) and the baselines are not. With gate.strict the refusing gate fails the run
    after writing its record. One run checks all three (each reruns the graph to the gate;
    the gate is the last stage either reaches)."""
    chosen = ["-S", "model=[xgboost,random_forest]", "-S", "model.xgboost.params.max_depth=2"]
    failed = run(["dvc", "exp", "run", *chosen, "-S", "gate.strict=true"], scratch, check=False)
    assert "Running stage 'train@xgboost'" in failed.stdout
    assert "Running stage 'train@random_forest'" not in failed.stdout
    assert "train@hist_gradient_boosting" not in failed.stdout
    assert "Stage 'baseline' didn't change" in failed.stdout
    assert "Running stage 'gate'" in failed.stdout
    fit = json.loads((scratch / "models" / "candidates" / "xgboost" / "fit.json").read_text())
    assert fit["params"]["max_depth"] == 2
    # the gate compared the selected candidates only, refused them, and (strict) failed
    gate = json.loads((scratch / "reports" / "gate.json").read_text())
    assert sorted(gate["candidates"]) == ["random_forest", "xgboost"]
    assert gate["strict"] is True and gate["tuning_allowed"] is False
    assert failed.returncode != 0
    assert "gate refused" in failed.stdout + failed.stderr
    assert "Running stage 'tune'" not in failed.stdout


def test_broken_config_fails_the_stage_without_traceback_or_outputs(scratch: Path):
    failed = run(["dvc", "exp", "run", "-S", "data.target=creditabilty"], scratch, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "data.target: column 'creditabilty' is not in the data" in output
    assert "did you mean 'creditability'?" in output
    assert "Traceback" not in output
    assert not list((scratch / "data").glob("prepared/*.tmp"))
    assert not list((scratch / "data").glob(".prepared.*"))


def test_queued_grid_runs_one_experiment_per_value(scratch: Path):
    """README: `dvc exp run --queue -S 'model=xgboost,random_forest'` + `dvc queue start`.
    Through the gate (the first stage that reads the candidate list; the rest of the
    graph is the shared run's): each experiment's gate record holds the one candidate of
    its value, and `dvc exp show` lists the metrics (numbers only)."""
    grid = ["dvc", "exp", "run", "--queue", "-S", "model=xgboost,random_forest", "gate"]
    run(grid, scratch)
    run(["dvc", "exp", "run", "--run-all", "--jobs", "1"], scratch)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], scratch).stdout)
    per_experiment = []
    for entry in shown:
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                metrics = (rev.get("data") or {}).get("metrics") or {}
                gate = metrics.get("metrics/gate.json", {}).get("data", {})
                per_experiment.append(sorted(gate.get("candidates", {})))
    assert sorted(per_experiment) == [["random_forest"], ["xgboost"]]
    assert "value_per_period" in json.dumps(shown)


def test_gate_refuses_and_tuning_is_skipped_loudly(ran_project: Path):
    gate = json.loads((ran_project / "reports" / "gate.json").read_text())
    assert gate["tuning_allowed"] is False and gate["n_compared"] == 3
    for decision in gate["candidates"].values():
        assert decision["ci_lower"] < decision["min_uplift"]
        assert "tuning not allowed" in decision["reason"]
        assert isinstance(decision["good_enough_met"], bool)
    tune = json.loads((ran_project / "reports" / "tune.json").read_text())
    assert tune["tuning_allowed"] is False and tune["studies"] == {}
    metrics = read_metrics(ran_project)
    # No candidate passed: the best baseline goes forward (gate.final_model: gated).
    report = json.loads((ran_project / "reports" / "evaluation.json").read_text())
    assert report["final"]["model"] == report["best_baseline"]
    # the metrics hold its numbers only (the name is in the report): dvc exp show columns
    valid = report["final"]["valid"]
    assert metrics["final"]["valid_value_per_period"] == valid["value_per_period"]
    assert "model" not in metrics["final"]


def test_cli_tune_refuses_with_the_gates_reason(ran_project: Path):
    refused = run(["valuegate", "tune", "model=xgboost"], ran_project, check=False)
    assert refused.returncode == 3
    assert "xgboost does not beat linear by enough" in refused.stderr
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
