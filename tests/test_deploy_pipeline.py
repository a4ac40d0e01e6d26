"""End to end with real DVC: the deploy gate, the registry across reruns, the score stage,
a forced rerun of every stage that reproduces the committed outputs byte for byte, and an
edit of conf/ (refused by plain `dvc repro`, used by `dvc exp run`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run
from valuegate import cli
from valuegate.bundle import load_bundle

pytestmark = pytest.mark.slow


def deploy_record(project: Path) -> dict:
    return json.loads((project / "reports" / "deploy.json").read_text())


def scratch_copy(ran_project: Path, tmp_path: Path) -> Path:
    """The shared full run (conftest: a fresh copy of the project, no registry, after one
    `dvc repro`), copied with its git history, DVC cache and outputs."""
    return Path(shutil.copytree(ran_project, tmp_path / "project", symlinks=True))


def test_pipeline_gates_packages_scores_and_reruns_to_the_same_bytes(
    ran_project, tmp_path, monkeypatch, capsys
):
    """One project through the deploy gate's runs. The forced rerun of every stage is
    here, not in a test of its own, because it needs what these runs leave: a registry
    that already holds the model (the committed state of a clone, where package says
    "already in the registry as v1"), after a rerun of every stage the registry feeds."""
    # The first run, on a project whose registry is empty: the shared full run.
    project = scratch_copy(ran_project, tmp_path)
    first = deploy_record(project)
    metrics = (project / "metrics" / "evaluate.json").read_bytes()
    report = (project / "reports" / "evaluation.json").read_bytes()
    # every number of the decision is recorded, with a one-sentence reason
    for key in ("model", "test_value_per_period", "good_enough_value_per_period", "reason"):
        assert key in first
    # The example's final model (the linear baseline: it earns most on validation) meets
    # good_enough on test, so the first run packages it as v1, the champion.
    assert first["packaged"], first["reason"]
    assert first["version"] == "v1" and first["champion_after"] == "v1"
    evaluation = json.loads((project / "reports" / "evaluation.json").read_text())
    assert first["model"] == evaluation["final"]["model"]
    registry = project / "models" / "registry" / "german_credit"  # one per dataset
    assert (registry / "champion.json").is_file()
    bundle = load_bundle(registry / "v1")
    assert bundle.version == "v1" and bundle.manifest["model"]["name"] == first["model"]
    scored = pd.read_parquet(project / "reports" / "scored.parquet")
    assert len(scored) == 1000 and scored["score"].between(0, 1).all()

    # The registry is a persistent output: a rerun of the package stage keeps v1; the same
    # model does not beat itself and is recognised as the champion, so it is not packaged
    # again.
    run(["dvc", "repro", "-f", "-s", "package"], project)
    again = deploy_record(project)
    assert not again["packaged"] and again["already_packaged"] == "v1"
    assert "already in the registry as v1 (same predictions; the champion)" in again["reason"]
    # not compared with itself: a rerun spends none of the test rows' budget
    assert "versus_champion" not in again
    assert not (registry / "budget.json").exists()
    assert sorted(p.name for p in registry.glob("v*")) == ["v1"]

    # The registry changes outside DVC (promote/rollback): `dvc repro` reruns the package
    # stage, which must not package a model the registry already holds, and rescores. A
    # person took v1 out of service ("demoted": without it, a v1 never in the history would
    # read as a promotion a killed run left unfinished, and the rerun would finish it).
    # Through `score` (what is checked); the promotion's plain `dvc repro` below reruns
    # report and monitor once for both registry changes.
    (registry / "champion.json").write_text('{"champion": null, "history": [], "demoted": ["v1"]}')
    rerun = run(["dvc", "repro", "score"], project).stdout
    assert "Running stage 'package'" in rerun and "Running stage 'score'" in rerun
    held = deploy_record(project)
    assert not held["packaged"] and held["already_packaged"] == "v1", held["reason"]
    assert "already in the registry as v1" in held["reason"]
    assert sorted(p.name for p in registry.glob("v*")) == ["v1"]
    score = json.loads((project / "reports" / "score.json").read_text())
    assert score["rows_scored"] == 0 and "no champion" in score["skipped"]
    monkeypatch.chdir(project)  # the CLI in process (its process is not what is checked)
    assert cli.main(["models", "promote", "v1"]) == 0
    run(["dvc", "repro"], project)
    score = json.loads((project / "reports" / "score.json").read_text())
    assert score["rows_scored"] == 1000

    # README command 1 on a fresh clone must reproduce the committed outputs byte for
    # byte: commit this run (the registry holds the model, as a clone's does), rerun every
    # stage (`dvc repro --force`), and nothing git tracks, nor any hash in dvc.lock, may
    # change. The same data, config and seed also give the first run's metrics and
    # records: the one forced rerun checks both.
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run([*git, "add", "-A"], project)
    run([*git, "commit", "-q", "-m", "a run"], project)
    lock = (project / "dvc.lock").read_text()
    run(["dvc", "repro", "--force"], project)
    status = run(["git", "status", "--porcelain"], project).stdout
    diff = run(["git", "diff", "--stat"], project).stdout
    assert status == "", f"a rerun changed tracked files:\n{status}\n{diff}"
    assert (project / "dvc.lock").read_text() == lock
    assert (project / "metrics" / "evaluate.json").read_bytes() == metrics
    assert (project / "reports" / "evaluation.json").read_bytes() == report

    # An edit of conf/ (the monthly volume, 2000 -> 3000): plain `dvc repro` does not
    # recompose params.yaml, so it stops on the stale file with the command to run instead,
    # without a traceback or a changed output; `dvc exp run` composes conf/ and uses it.
    objective = project / "conf" / "objective" / "german_credit.yaml"
    assert "volume: 2000" in objective.read_text()
    objective.write_text(objective.read_text().replace("volume: 2000", "volume: 3000"))
    before = json.loads((project / "metrics" / "evaluate.json").read_text())
    failed = run(["dvc", "repro"], project, check=False)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "params.yaml is stale" in output and "dvc exp run" in output
    assert "Traceback" not in output
    assert json.loads((project / "metrics" / "evaluate.json").read_text()) == before
    # ... run with a bar above what the model earns on test (now 1.5x the first run's):
    # refused with the reason, nothing packaged, the champion stays and scores the batch.
    bar = 1.5 * first["test_value_per_period"] + 1
    # The objective changed: every model is refitted. One candidate is enough here (the
    # final model is the linear baseline either way; two fewer forests to fit). Through
    # `score` (the last stage checked: report and monitor add nothing here).
    bars = ["-S", f"objective.good_enough.value_per_period={bar}", "-S", "model=[xgboost]"]
    done = run(["dvc", "exp", "run", *bars, "score"], project).stdout
    after = json.loads((project / "metrics" / "evaluate.json").read_text())
    ratio = (
        after["models"]["linear"]["value_per_period"]
        / before["models"]["linear"]["value_per_period"]
    )
    assert ratio == pytest.approx(1.5)
    refused = deploy_record(project)
    assert not refused["packaged"] and "below the" in refused["reason"]
    assert "not packaged" in refused["reason"]
    assert sorted(p.name for p in (registry).glob("v*")) == ["v1"]
    score = json.loads((project / "reports" / "score.json").read_text())
    assert score["rows_scored"] == 1000 and "Running stage 'score'" in done

    # the CLI serves the registry the pipeline built
    capsys.readouterr()
    assert cli.main(["models", "list"]) == 0
    assert "* v1" in capsys.readouterr().out
