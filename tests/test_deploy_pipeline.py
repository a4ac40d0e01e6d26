"""End to end with real DVC: the deploy gate, the registry across reruns, the score stage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import copy_project, run
from valuegate.bundle import load_bundle

pytestmark = pytest.mark.slow


def deploy_record(project: Path) -> dict:
    return json.loads((project / "metrics" / "deploy.json").read_text())


def test_pipeline_gates_packages_and_scores(tmp_path):
    project = copy_project(tmp_path / "project")
    run(["dvc", "exp", "run"], project)
    first = deploy_record(project)
    # every number of the decision is recorded, with a one-sentence reason
    for key in ("model", "test_value_per_period", "good_enough_value_per_period", "reason"):
        assert key in first
    assert (project / "models" / "registry" / "champion.json").is_file()
    if not first["packaged"]:
        assert "not packaged" in first["reason"]
        score = json.loads((project / "metrics" / "score.json").read_text())
        assert score["rows_scored"] == 0 and "no champion" in score["skipped"]
        # a lower bar (the business's call) lets the same model through
        bar = first["test_value_per_period"] - 1
        run(["dvc", "exp", "run", "-S", f"objective.good_enough.value_per_period={bar}"], project)
        first = deploy_record(project)
    assert first["packaged"] and first["version"] == "v1" and first["champion_after"] == "v1"
    bundle = load_bundle(project / "models" / "registry" / "v1")
    assert bundle.hot_path == "xgboost_numpy"
    scored = pd.read_parquet(project / "reports" / "scored.parquet")
    assert len(scored) == 1000 and scored["score"].between(0, 1).all()

    # The registry is a persistent output: a rerun of the package stage keeps v1, and the
    # same model does not beat itself, so it is not packaged again.
    run(["dvc", "repro", "-f", "-s", "package"], project)
    again = deploy_record(project)
    assert not again["packaged"] and "does not beat champion v1" in again["reason"]
    assert again["versus_champion"]["observed_uplift"] == 0
    assert sorted(p.name for p in (project / "models" / "registry").glob("v*")) == ["v1"]

    # the CLI serves the registry the pipeline built
    listed = run(["valuegate", "models", "list"], project).stdout
    assert "* v1" in listed
