"""The rollback flag (issue 16 item 4): monitoring a labelled window compares the champion
with the champion it replaced, paired, each at its shipped operating point, with the deploy
gate's bootstrap; flags (alert kind `rollback`) when the previous one was surely better."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.deploy_helpers import fit
from valuegate.bundle import input_schema, save_bundle, validate_chunk
from valuegate.business import value_model
from valuegate.cli import main as cli_main
from valuegate.config.loading import validate
from valuegate.deploy import compare, fixed_point_uplifts
from valuegate.models import predict_scores
from valuegate.monitor.profile import PROFILE_FILE, profile_bytes, profile_from_splits
from valuegate.monitor.rollback import rollback_check
from valuegate.monitor.run import window_alerts
from valuegate.registry import Registry
from valuegate.row_lineage import lineage_record, to_npy


def _record(window: str, rollback: dict) -> dict:
    """A window record holding nothing but its rollback comparison."""
    return {
        "window": window,
        "value": {"at_risk": None},
        "drift": {"drifted": [], "tests": []},
        "schema": {"refused_by_column": {}, "new_category_columns": []},
        "rollback": rollback,
    }


def test_rollback_is_flagged_only_when_the_previous_champion_was_surely_better():
    cfg = validate(json.loads(json.dumps(_config_dump())))
    model = value_model(cfg)  # German credit: reject 0, approve a good +300, a bad -1,500
    rng = np.random.default_rng(4)
    y = (rng.random(600) < 0.3).astype(float)
    good = np.clip(0.6 * y + rng.normal(0.2, 0.15, 600), 0, 1)  # separates well
    # the champion approves everyone (threshold above every score), the previous one scores
    worse = rollback_check(model, y, good, 1.01, good, 0.45, None, 0.95, 400, 0, ("v2", "v1"))
    observed, uplifts = fixed_point_uplifts(model, y, good, 1.01, good, 0.45, None, 400, 0)
    same = compare(observed, uplifts, 0.025, 0.0)  # the deploy gate's interval, two-sided 95%
    assert worse["uplift"] == pytest.approx(observed) and worse["high"] == same["ci_upper"]
    assert worse["rollback_worth"] == -observed > 0 and worse["rollback_low"] > 0
    assert worse["flag"] and worse["rows"] == 600
    alerts = window_alerts(_record("2017", worse), 0.0, "EUR", "month")
    assert [a["kind"] for a in alerts] == ["rollback"]
    message = alerts[0]["message"]
    assert message.startswith("window 2017: rolling back to v1 would have been worth +")
    assert "EUR/month" in message and "`valuegate models rollback` restores it" in message
    assert alerts[0]["money"] == worse["rollback_worth"]
    # the same model on both sides: no difference, no flag, no alert
    twin = rollback_check(model, y, good, 0.45, good, 0.45, None, 0.95, 400, 0, ("v2", "v1"))
    assert twin["uplift"] == 0 and not twin["flag"]
    assert window_alerts(_record("2017", twin), 0.0, "EUR", "month") == []
    # a better champion is not flagged either
    better = rollback_check(model, y, good, 0.45, good, 1.01, None, 0.95, 400, 0, ("v2", "v1"))
    assert better["uplift"] > 0 and better["low"] > 0 and not better["flag"]


def test_the_config_accepts_rollback_in_fail_on_and_names_the_kinds():
    dump = _config_dump()
    dump["monitor"]["fail_on"] = ["rollback", "value"]
    assert validate(dump).monitor.fail_on == ["rollback", "value"]
    dump["monitor"]["fail_on"] = ["rolback"]
    with pytest.raises(Exception, match="rollback"):
        validate(dump)


# --------------------------------------------------------------------- through the command


def _config_dump() -> dict:
    from tests.deploy_helpers import config

    return json.loads(config().model_dump_json())


def _bundle(directory, version, point, cfg, splits, schema, pipeline):
    """A bundle as the package stage writes it: profile at `point`, row lineage."""
    fields = input_schema(schema, splits["train"])
    scores = {
        name: predict_scores(pipeline, splits[name][schema.features], schema.task)
        for name in ("valid", "test")
    }
    profile = profile_from_splits(
        fields, value_model(cfg), point, splits, scores, cfg.data, schema.amount_column
    )
    lineage, seen = lineage_record(splits, schema.id_column, "x", {"seed": cfg.seed})
    manifest = {
        "version": version,
        "model": {"name": "xgboost", "task": schema.task},
        "input": {"fields": fields, "amount_column": schema.amount_column},
        "decision": {"kind": "threshold", "value": point, "action": cfg.objective.decision},
        "objective": cfg.objective.model_dump(),
        "data": {"name": cfg.data.name, "positive_label": cfg.data.positive_label},
        "row_lineage": lineage,
    }
    files = {lineage["files"][which]: to_npy(rows) for which, rows in seen.items()}
    files[PROFILE_FILE] = profile_bytes(profile)
    check = validate_chunk(pd.concat([splits["valid"], splits["test"]]), fields)[0]
    save_bundle(directory, pipeline, manifest, check, files)


@pytest.mark.slow
def test_the_monitor_command_flags_a_promoted_challenger_that_lost_value(
    tmp_path, monkeypatch, capsys
):
    """v1 (threshold 0.3) was replaced by v2, the same model approving everyone (a
    threshold no score reaches): on the labelled production rows neither saw, rolling back
    is surely worth more; the command names the fix and exits 4 with fail_on [rollback].
    The production file also holds the validation rows, which both bundles were selected
    on: they are left out of the comparison (row lineage)."""
    cfg, splits, schema, pipeline = fit("xgboost", {"n_estimators": 30})
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "models" / "registry" / "german_credit"
    _bundle(root / "v1", "v1", 0.3, cfg, splits, schema, pipeline)
    _bundle(root / "v2", "v2", 1.0, cfg, splits, schema, pipeline)
    registry = Registry(root)
    registry.ensure()
    registry.promote("v1")
    registry.promote("v2")
    rows = pd.concat([splits["valid"], splits["test"]], ignore_index=True)
    rows.to_csv(tmp_path / "production.csv", index=False)
    dump = json.loads(cfg.model_dump_json())
    dump["deploy"]["registry"] = "models/registry/german_credit"
    dump["deploy"]["n_resamples"] = 300
    dump["monitor"].update(
        input="production.csv", window={"by": "all"}, fail_on=["rollback"], model="champion"
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dump))
    code = cli_main(["monitor", "--params", "params.yaml"])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "alert (rollback)" in err and "rolling back to v1 would have been worth +" in err
    assert "`valuegate models rollback` restores it" in err and "Traceback" not in err
    record = json.loads((tmp_path / "reports" / "monitor.json").read_text())
    rollback = record["windows"][0]["rollback"]
    assert rollback["champion"] == "v2" and rollback["previous"] == "v1"
    assert rollback["rows"] == len(splits["test"])  # the validation rows were seen by both
    assert rollback["rows_excluded"]["seen_by_a_model"] == len(splits["valid"])
    assert rollback["flag"] and rollback["rollback_low"] > 0
    page = (tmp_path / "reports" / "monitor.html").read_text()
    assert "Rollback: v2 against the champion it replaced, v1" in page
    assert "valuegate models rollback" in page
    # after `valuegate models rollback`, v1 is the champion and has nothing before it
    assert cli_main(["models", "rollback", "--registry", str(root)]) == 0
    capsys.readouterr()
    assert cli_main(["monitor", "--params", "params.yaml"]) == 0
    again = json.loads((tmp_path / "reports" / "monitor.json").read_text())
    assert again["model"]["version"] == "v1" and again["windows"][0]["rollback"] is None
