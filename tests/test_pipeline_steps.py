"""One pipeline definition: the steps in memory, the DVC stages over them, one list of
paths that dvc.yaml agrees with."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from valuegate import paths
from valuegate.assess.findings import AssessmentBlockedError
from valuegate.data import file_sha256, load_raw
from valuegate.errors import ConfigError
from valuegate.pipeline import STEPS, run, steps


def dvc_stages(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def declared(entries: list) -> list[str]:
    """dvc.yaml's outs / metrics entries: plain paths or {path: options}."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def test_dvc_yaml_declares_exactly_the_paths_the_code_writes():
    stages = dvc_stages()
    assert set(stages) == set(paths.STAGE_OUTPUTS), "a stage is missing on one side"
    outputs = set()
    for name, (outs, metrics) in paths.STAGE_OUTPUTS.items():
        stage = stages[name].get("do", stages[name])  # train is a foreach stage
        assert declared(stage.get("outs")) == [p.as_posix() for p in outs], name
        assert declared(stage.get("metrics")) == [p.as_posix() for p in metrics], name
        outputs |= {p.as_posix() for p in (*outs, *metrics)}
    # every artifact a stage reads is one a stage writes (models/candidates: the foreach's)
    outputs.add(paths.CANDIDATES.as_posix())
    roots = ("data/", "models/", "reports/", "metrics/", "plots/", "tuning/")
    for name, stage in stages.items():
        for dep in stage.get("do", stage).get("deps", []):
            if dep.startswith(roots):
                assert dep in outputs, f"{name} reads {dep}, which no stage writes"


@pytest.mark.parametrize(
    ("stage", "module"),
    [
        ("prepare", "prepare"),
        ("assess", "assess"),
        ("baseline", "fit"),
        ("train", "fit"),
        ("gate", "gate"),
        ("tune", "tune"),
        ("evaluate", "evaluate"),
        ("package", "package"),
        ("score", "score"),
    ],
)
def test_each_stage_depends_on_the_step_it_runs(stage: str, module: str):
    deps = dvc_stages()[stage].get("do", dvc_stages()[stage])["deps"]
    assert f"src/valuegate/pipeline/{module}.py" in deps
    assert (ROOT / "src" / "valuegate" / "pipeline" / f"{module}.py").is_file()


def test_a_point_in_memory_is_the_point_its_record_holds():
    """A calibrated score can sit exactly on a threshold (isotonic: 1/6); the stages read
    the point back from fit.json at 10 significant digits, so the in-memory run must too."""
    point = {"value": 1 / 6, "acts": False}
    assert steps.as_recorded(point) == {"value": 0.1666666667, "acts": False}
    assert (steps.as_recorded(point)["value"] <= 1 / 6) != (point["value"] <= 1 / 6)


def test_run_stops_after_the_step_asked_for(compose):
    config = compose()
    raw = load_raw(config.data, ROOT)
    result = run(config, raw, "sha", through="prepare")
    assert set(result.splits) == {"train", "valid", "test"}
    assert result.assessed is None and not result.models and result.gate is None
    assert result.schema.source_sha256 == "sha"
    with pytest.raises(ConfigError, match="'fitting' is not a pipeline step"):
        run(config, raw, "sha", through="fitting")
    assert STEPS[-1] == "evaluate"


def test_blocked_data_stop_the_run_before_any_model(compose):
    config = compose(
        "assess.leakage.post_outcome_columns=[duration_in_month]",
        "assess.n_folds=2",
    )
    raw, cache = load_raw(config.data, ROOT), {}
    result = run(config, raw, "sha", raise_blocked=False, cache=cache)
    assert result.stopped == "blocked" and result.assessed.blocked
    assert not result.models and result.gate is None and result.evaluation is None
    # by default the blocked data raise (the assessment comes from the cache this time)
    with pytest.raises(AssessmentBlockedError, match="post_outcome:duration_in_month"):
        run(config, raw, "sha", cache=cache)
    assert "post_outcome:duration_in_month" in str(result.error)


RECORDS = [
    "metrics/assess.json",
    "metrics/gate.json",
    "metrics/tune.json",
    "metrics/evaluate.json",
    "reports/assessment.json",
    "reports/gate.json",
    "reports/tune.json",
    "reports/evaluation.json",
    "models/baselines/linear/fit.json",
    "models/candidates/xgboost/fit.json",
]


@pytest.mark.slow
def test_in_memory_run_and_dvc_repro_write_the_same_bytes(ran_project: Path, tmp_path, monkeypatch):
    """One code path: the in-memory run of the example's params.yaml, written through the
    stages' writers, gives byte-identical metrics and records to `dvc repro`'s."""
    from valuegate.config import load_params
    from valuegate.stages.outputs import write_result

    monkeypatch.chdir(ran_project)  # the example's data path is relative to the project
    config = load_params()
    raw = load_raw(config.data)
    result = run(config, raw, file_sha256(config.data.path))
    write_result(result, tmp_path)
    for name in RECORDS:
        assert (tmp_path / name).read_bytes() == (ran_project / name).read_bytes(), name
    # the records point to data of the same version, so the later stages accept them
    assert (
        json.loads((tmp_path / "reports/gate.json").read_text())["lineage"]["rows"]
        == (json.loads((ran_project / "reports/gate.json").read_text())["lineage"]["rows"])
    )


def test_tune_runs_only_what_the_gate_passed_with_the_callers_workers(compose):
    """The tune step: skipped with the gate's reasons when nothing passed; else one study
    per selected candidate inside the caller's worker context (the stage's processes),
    released once the study is ready, and the best params refit."""
    config = compose(
        "model=random_forest",
        "model.random_forest.params.n_estimators=10",
        "tune.n_trials=1",
        "tune.n_folds=2",
        "gate.cross_fit.folds=2",
        "gate.cross_fit.choice_resamples=20",
    )
    splits, schema = steps.prepare(load_raw(config.data, ROOT), config, "sha")
    refused = {
        "passed": [],
        "best_passing": None,
        "candidates": {"random_forest": {"reason": "random_forest does not beat linear"}},
    }
    events: list[str] = []

    @contextmanager
    def workers(candidate: str):
        events.append(f"start {candidate}")
        yield lambda study: events.append(f"ready {study.split('-')[1]}")  # valuegate-<name>-<id>
        events.append("joined")

    skipped = steps.tune(config, schema, splits, refused, None, workers)
    assert skipped.models == [] and events == []
    assert skipped.record == {
        "tuning_allowed": False,
        "studies": {},
        "skipped_because": ["random_forest does not beat linear"],
    }
    passed = {**refused, "passed": ["random_forest"], "best_passing": "random_forest"}
    tuned = steps.tune(config, schema, splits, passed, None, workers)
    assert events == ["start random_forest", "ready random_forest", "joined"]
    ((model, study),) = tuned.models
    assert model.name == "random_forest_tuned" and model.info["tuned_from"] == "random_forest"
    assert tuned.record["tuning_allowed"] is True
    assert "seconds" not in tuned.record["studies"]["random_forest"]  # no timings tracked
    assert study.n_complete == 1
