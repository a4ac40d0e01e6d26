"""The score step in memory (pipeline/score.py) and the `score` stage over it: a table
scored in memory holds exactly the rows and values the stage writes for the same file,
streamed in chunks, with the same record, and a bad row is refused the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.deploy_helpers import make_bundle
from valuegate.config.loading import compose_config, validate, write_params
from valuegate.errors import DataError
from valuegate.pipeline import steps
from valuegate.registry import Registry

BATCH = "data/raw/batch.csv"


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> Path:
    """A small xgboost bundle of the example, fitted once for the module."""
    directory = tmp_path_factory.mktemp("champion") / "v1"
    make_bundle(directory)
    return directory


def _project(tmp: Path, champion: Path, *overrides: str):
    """A run directory: params.yaml (no conf/, so no freshness check), a batch file of
    the example's rows with faults planted, and `champion` as v1, the registry's champion."""
    raw = compose_config(ROOT / "conf", [f"deploy.batch.input={BATCH}", *overrides])
    config = validate(raw)
    write_params(raw, tmp / "params.yaml")
    frame = pd.read_csv(ROOT / config.data.path).head(300)
    frame.loc[3, "purpose"] = "a purpose never seen"  # unseen level: scored as unknown
    frame.loc[7, "age_in_years"] = np.nan  # a gap where training had none
    frame["credit_amount"] = frame["credit_amount"].astype(object)
    frame.loc[11, "credit_amount"] = "lots"  # not a number: refused
    (tmp / "data/raw").mkdir(parents=True)
    frame.to_csv(tmp / BATCH, index=False)
    registry = Registry(config.deploy.registry)
    shutil.copytree(champion, tmp / registry.root / "v1")
    Registry(tmp / registry.root).promote("v1")
    return config


def test_the_score_stage_writes_what_the_step_returns(tmp_path, monkeypatch, champion):
    from valuegate.stages import score as stage

    # chunks of 64 rows: the stage streams the file; the step takes it whole
    config = _project(
        tmp_path, champion, "deploy.batch.on_error=skip", "deploy.batch.chunk_size=64"
    )
    monkeypatch.chdir(tmp_path)
    stage.main([])
    bundle = Registry(config.deploy.registry).load("champion")
    step = steps.score(config, bundle, pd.read_csv(BATCH))

    written = pd.read_parquet("reports/scored.parquet")
    pd.testing.assert_frame_equal(step.scored, written, check_exact=True)
    assert json.loads(Path("reports/score.json").read_text()) == step.record
    # the planted faults: one row refused, the others scored and counted
    assert step.record["rows_in"] == 300 and step.record["rows_skipped"] == 1
    assert 12 not in set(step.scored["row"]) and len(step.scored) == 299
    assert step.record["unseen_categories"] == {"purpose": 1}
    assert step.record["missing_not_in_training"] == {"age_in_years": 1}
    ((row, why),) = step.skipped
    assert row == 12 and "credit_amount" in why and "lots" in why
    assert step.scored["decision"].dtype == bool and step.scored["score"].between(0, 1).all()


def test_a_bad_row_stops_the_step_as_it_stops_the_stage(tmp_path, monkeypatch, champion):
    from valuegate.stages import score as stage
    from valuegate.stages.common import run_stage

    config = _project(tmp_path, champion)  # deploy.batch.on_error: fail (the default)
    monkeypatch.chdir(tmp_path)
    bundle = Registry(config.deploy.registry).load("champion")
    with pytest.raises(DataError, match=r"bad row\(s\): row 12: .*credit_amount") as raised:
        steps.score(config, bundle, pd.read_csv(BATCH))
    assert str(raised.value).startswith(f"{BATCH}: ")
    assert str(raised.value).endswith(steps.SCORE_FIX_HINT)
    assert run_stage(stage.main) != 0
    assert not Path("reports/scored.parquet").exists()  # nothing half-written


def test_no_champion_is_recorded_not_scored(tmp_path, monkeypatch, champion):
    from valuegate.stages import score as stage

    config = _project(tmp_path, champion)
    shutil.rmtree(tmp_path / config.deploy.registry)
    monkeypatch.chdir(tmp_path)
    stage.main([])
    record = json.loads(Path("reports/score.json").read_text())
    assert record == steps.no_champion_record(config.deploy.registry)
    assert record["rows_scored"] == 0 and "has no champion" in record["skipped"]
    assert len(pd.read_parquet("reports/scored.parquet")) == 0
