"""Monitoring a regression model (the diabetes example, issue 15): realised value where
labels exist, no estimate without labels (a regression cost needs the outcome: the record
and the page say so), value at risk from the realised value, drift of the features and of
the prediction. Small data: the example's 442 rows, a linear model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from valuegate.bundle import input_schema, save_bundle, validate_chunk
from valuegate.business import value_model
from valuegate.cli import main as cli_main
from valuegate.config import compose_config
from valuegate.config.loading import validate
from valuegate.config.schema import ModelSpec
from valuegate.data import load_raw, prepare, target_vector
from valuegate.models import build_pipeline, predict_scores
from valuegate.monitor.profile import PROFILE_FILE, profile_bytes, profile_from_splits
from valuegate.monitor.run import window_alerts, window_record
from valuegate.monitor.windows import Window, label_vector

OFFSET = 5.0  # the shipped operating point: predictions shifted up (under-prediction is dearer)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    """(config, splits, fields, fitted pipeline, profile, bundle dir)."""
    cfg = validate(compose_config(ROOT / "conf", ["+experiment=diabetes"]))
    splits, schema = prepare(load_raw(cfg.data, ROOT), cfg.data, cfg.seed, source_sha256="x")
    assert schema.task == "regression"
    spec = ModelSpec(estimator="linear", params={})
    pipeline = build_pipeline("model.linear", spec, "regression", schema.numeric, [], 0)
    pipeline.fit(splits["train"][schema.features], target_vector(splits["train"], cfg.data))
    fields = input_schema(schema, splits["train"])
    scores = {
        name: predict_scores(pipeline, splits[name][schema.features], "regression")
        for name in ("valid", "test")
    }
    profile = profile_from_splits(
        fields, value_model(cfg), OFFSET, splits, scores, cfg.data, schema.amount_column
    )
    manifest = {
        "version": "v1",
        "model": {"name": "linear", "task": "regression"},
        "input": {"fields": fields, "amount_column": schema.amount_column},
        "decision": {"kind": "offset", "value": OFFSET, "action": cfg.objective.decision},
        "objective": cfg.objective.model_dump(),
        "data": {"name": cfg.data.name},
    }
    check = validate_chunk(pd.concat([splits["valid"], splits["test"]]), fields)[0]
    directory = tmp_path_factory.mktemp("bundle") / "v1"
    save_bundle(directory, pipeline, manifest, check, {PROFILE_FILE: profile_bytes(profile)})
    return cfg, splits, schema, fields, pipeline, profile, directory


def _settings(cfg) -> dict:
    alerts = cfg.monitor.alerts
    return {
        "alpha": alerts.alpha,
        "min_distance": alerts.min_distance,
        "confidence": cfg.monitor.confidence,
        "amount_column": None,
        "new_category_share": alerts.new_category_share,
    }


def test_a_regression_window_has_realised_value_and_no_estimate(diabetes):
    cfg, splits, schema, fields, pipeline, profile, _ = diabetes
    model = value_model(cfg)
    rows = splits["test"]
    y = label_vector(rows[cfg.data.target], "regression", None)

    def score(frame):
        return predict_scores(pipeline, frame[schema.features], "regression")

    record = window_record(
        Window("all", np.arange(len(rows))), rows, None, y, fields, profile, model, score,
        _settings(cfg),
    )  # fmt: skip
    value = record["value"]
    assert value["estimated"] is None  # the cost of an error needs the outcome
    realised = value["realised"]
    assert realised["value_per_period"] == pytest.approx(
        model.value_at_point(y, score(rows), OFFSET, None)
    )  # the one value model, at the shipped offset
    assert realised["low"] < realised["value_per_period"] < realised["high"] < 0  # a cost
    risk = value["at_risk"]
    assert risk["now"] == "realised"
    assert risk["deploy_value_per_period"] == profile["value"]["test"]["value_per_period"]
    assert risk["value_per_period"] == pytest.approx(0.0, abs=1e-6)  # the test rows themselves
    assert {t["name"] for t in record["drift"]["tests"]} == {*schema.features, "score"}
    assert record["drift"]["drifted"] == []
    # unlabelled: no value figure at all, and the alert text says why
    blind = window_record(
        Window("all", np.arange(len(rows))), rows, None, None, fields, profile, model, score,
        _settings(cfg),
    )  # fmt: skip
    assert blind["value"]["realised"] is None and blind["value"]["at_risk"] is None
    # a unit change in bmi: drift of the feature and the prediction, and the realised cost
    broken = rows.assign(bmi=rows["bmi"] * 10)
    hit = window_record(
        Window("all", np.arange(len(rows))), broken, None, y, fields, profile, model, score,
        _settings(cfg),
    )  # fmt: skip
    assert "bmi" in hit["drift"]["drifted"]
    assert hit["value"]["at_risk"]["high"] < 0  # surely worth less than at deploy
    kinds = {a["kind"] for a in window_alerts(hit, 0.0, "EUR", "month")}
    assert kinds == {"drift", "value"}
    no_labels = window_alerts(
        {**hit, "value": {**hit["value"], "at_risk": None}}, 0.0, "EUR", "month"
    )
    assert "a regression cost needs them" in no_labels[0]["message"]


@pytest.mark.slow
def test_the_monitor_command_on_a_regression_model(diabetes, tmp_path, monkeypatch, capsys):
    """Through `valuegate monitor` (params.yaml, a registry with the bundle as champion):
    windows by count over a production file whose second half has bmi in other units;
    exit 4 with fail_on [value], the page says there is no estimate without labels."""
    import shutil

    from valuegate.registry import Registry

    cfg, splits, _schema, _fields, _pipeline, _profile, directory = diabetes
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "models" / "registry" / "diabetes"
    shutil.copytree(directory, root / "v1")
    registry = Registry(root)
    registry.ensure()
    registry.promote("v1")
    rows = pd.concat([splits["valid"], splits["test"]], ignore_index=True)
    half = len(rows) // 2
    rows.loc[half:, "bmi"] *= 10
    rows.to_parquet(tmp_path / "production.parquet")
    dump = json.loads(cfg.model_dump_json())
    dump["deploy"]["registry"] = "models/registry/diabetes"
    dump["monitor"].update(
        input="production.parquet", window={"by": "count", "size": half}, fail_on=["value"]
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dump))
    assert cli_main(["monitor", "--params", "params.yaml"]) == 4
    err = capsys.readouterr().err
    assert "alert (value)" in err and "rows " in err and "Traceback" not in err
    record = json.loads((tmp_path / "reports" / "monitor.json").read_text())
    first, second = record["windows"]
    assert first["value"]["estimated"] is None and first["value"]["realised"]["rows"] == half
    assert first["alerts"] == [] and "bmi" in second["drift"]["drifted"]
    assert second["value"]["at_risk"]["high"] < 0
    metrics = json.loads((tmp_path / "metrics" / "monitor.json").read_text())
    assert all(w.get("estimated") is None and w["realised"] for w in metrics["by_window"].values())
    page = (tmp_path / "reports" / "monitor.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "n/a" in page
