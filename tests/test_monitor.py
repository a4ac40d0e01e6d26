"""Monitoring (docs/monitoring.md): the reference profile, the drift tests, value per
window, the stage's outputs and its errors. Small data (the German credit example's
splits, a 30-tree xgboost), no `dvc repro`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.deploy_helpers import fit
from valuegate.bundle import input_schema, load_bundle, save_bundle, validate_chunk
from valuegate.business import value_model
from valuegate.cli import main as cli_main
from valuegate.config.loading import validate
from valuegate.errors import DataError
from valuegate.models import predict_scores
from valuegate.monitor.drift import holm, homogeneity
from valuegate.monitor.profile import (
    PROFILE_FILE,
    bin_counts,
    numeric_edges,
    profile_bytes,
    profile_from_splits,
)
from valuegate.monitor.windows import cut_windows, join_labels
from valuegate.stages.monitor import MonitorAlertError, finish, monitor

POINT = 0.3


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """(config, splits, bundle dir, profile) for a small xgboost on German credit, packaged
    with its reference profile as the package stage does."""
    cfg, splits, schema, pipeline = fit("xgboost", {"n_estimators": 30})
    fields = input_schema(schema, splits["train"])
    scores = {
        name: predict_scores(pipeline, splits[name][schema.features], schema.task)
        for name in ("valid", "test")
    }
    model = value_model(cfg)
    profile = profile_from_splits(
        fields, model, POINT, splits, scores, cfg.data, schema.amount_column
    )
    manifest = {
        "version": "v1",
        "model": {"name": "xgboost", "task": schema.task},
        "input": {"fields": fields, "amount_column": schema.amount_column},
        "decision": {"kind": "threshold", "value": POINT, "action": cfg.objective.decision},
        "objective": cfg.objective.model_dump(),
        "data": {"name": cfg.data.name, "positive_label": cfg.data.positive_label},
    }
    check = validate_chunk(pd.concat([splits["valid"], splits["test"]]), fields)[0]
    directory = tmp_path_factory.mktemp("bundle") / "v1"
    save_bundle(directory, pipeline, manifest, check, {PROFILE_FILE: profile_bytes(profile)})
    return cfg, splits, directory, profile


def configured(cfg, **monitor):
    raw = cfg.model_dump()
    raw["monitor"] = {**raw.get("monitor", {}), **monitor}
    return validate(raw)


def outputs(tmp_path: Path) -> dict[str, Path]:
    return {
        "out_json": tmp_path / "reports" / "monitor.json",
        "out_metrics": tmp_path / "metrics" / "monitor.json",
        "out_page": tmp_path / "reports" / "monitor.html",
    }


# ------------------------------------------------------------------ profile


def test_the_profile_is_stored_hashed_and_deterministic(packaged):
    cfg, splits, directory, profile = packaged
    bundle = load_bundle(directory)  # verifies profile.json against the manifest's sha256
    assert PROFILE_FILE in bundle.manifest["files"]
    stored = json.loads((directory / PROFILE_FILE).read_text())
    assert stored["format"] == "valuegate-profile/1"
    rows = len(splits["train"]) + len(splits["valid"])
    for name, entry in stored["features"].items():
        total = sum(entry["counts"]) + entry["missing"] + entry.get("other", 0)
        assert total == rows, name
    assert sum(stored["calibration"]["rows"]) == len(splits["valid"])
    assert stored["value"]["at_deploy"] == "test"
    # the same inputs give the same bytes (a tracked artifact holds no noise)
    again = profile_from_splits(
        bundle.fields,
        bundle.value_model,
        POINT,
        splits,
        {
            n: bundle.score_frame(validate_chunk(splits[n], bundle.fields)[0])
            for n in ("valid", "test")
        },
        cfg.data,
        bundle.amount_column,
    )
    assert profile_bytes(again) == profile_bytes(profile)


def test_bins_need_25_reference_rows_each_and_flag_continuous_features():
    rng = np.random.default_rng(0)
    from valuegate.monitor.profile import numeric_profile

    small = numeric_profile(rng.normal(size=100), 10)
    assert len(small["edges"]) + 1 == 4 and small["continuous"]
    coarse = numeric_profile(rng.integers(0, 3, 1000).astype(float), 10)
    assert not coarse["continuous"] and len(coarse["edges"]) <= 3
    constant = numeric_profile(np.ones(500), 10)
    assert constant["counts"] == [500, 0]
    # bin i holds edges[i-1] < x <= edges[i]; missing last
    assert list(bin_counts(np.array([0.0, 1.0, 1.5, np.nan]), np.array([1.0]))) == [2, 1, 1]
    assert list(numeric_edges(np.array([np.nan]), 10)) == []


# ------------------------------------------------------------------ drift statistics


def test_holm_matches_the_step_down_rule():
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    assert np.allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_a_constant_feature_never_drifts_and_a_new_missing_cell_does():
    ref = np.array([[500, 0, 0], [500, 0, 0]])
    cur = np.array([[400, 0, 0], [300, 0, 100]])
    result = homogeneity(ref, cur)
    assert result["p_value"][0] == 1.0 and result["js_distance"][0] == 0.0
    assert result["p_value"][1] < 1e-10


def test_quantile_bins_of_a_small_reference_keep_alpha():
    """The reference's own quantile bins fix its counts: the pooled (homogeneity) form
    overstates the evidence there; the spacings form keeps the false-alert rate."""
    rng = np.random.default_rng(3)
    trials, n_ref, n_cur = 1500, 100, 5000
    ref, cur = [], []
    for _ in range(trials):
        x, y = rng.normal(size=n_ref), rng.normal(size=n_cur)
        edges = numeric_edges(x, 10)  # 10 bins of 10 rows: the fewest-rows case
        ref.append(bin_counts(x, edges))
        cur.append(bin_counts(y, edges))
    ref, cur = np.array(ref), np.array(cur)
    pooled = (homogeneity(ref, cur)["p_value"] < 0.05).mean()
    spacings = (homogeneity(ref, cur, spacings=np.ones(trials, bool))["p_value"] < 0.05).mean()
    assert pooled > 0.08  # the naive form: about twice alpha
    assert spacings < 0.08


# ------------------------------------------------------------------ windows and labels


def test_windows_by_count_and_by_time():
    frame = pd.DataFrame({"t": [2015] * 3 + [2016] * 4 + [2017] * 2, "x": range(9)})
    by_count = cut_windows(frame, "count", 4, None, None, None)
    assert [len(w.rows) for w in by_count] == [4, 5]  # a short tail joins the window before
    by_year = cut_windows(frame, "time", 0, "t", None, 2016)
    assert [w.label for w in by_year] == ["2016", "2017"]
    assert [len(w.rows) for w in by_year] == [4, 2]


def test_an_empty_window_names_it():
    days = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04"])
    frame = pd.DataFrame({"day": days, "x": [1, 2, 3]})
    with pytest.raises(DataError, match=r"window 2024-01-03 .*holds no rows"):
        cut_windows(frame, "time", 0, "day", "D", None)
    with pytest.raises(DataError, match=r"at or after monitor\.window\.start"):
        cut_windows(frame, "time", 0, "day", "D", "2025-01-01")


def test_labels_with_unknown_ids_are_refused_naming_them():
    frame = pd.DataFrame({"id": [1, 2, 3]})
    labels = pd.DataFrame({"id": [1, 7], "y": ["good", "bad"]})
    with pytest.raises(DataError, match=r"1 of 2 label id\(s\) in column 'id' match no row.*'7'"):
        join_labels(frame, labels, "id", "y", "monitor.labels x.csv")
    joined = join_labels(frame, labels.iloc[:1], "id", "y", "monitor.labels x.csv")
    assert joined.tolist()[0] == "good" and joined.isna().tolist() == [False, True, True]


def test_a_log_of_another_model_version_is_refused(packaged, tmp_path):
    from valuegate.monitor import windows
    from valuegate.serving.log import PredictionLog

    _, splits, directory, _ = packaged
    bundle = load_bundle(directory)
    record = validate_chunk(splits["valid"].head(1), bundle.fields)[0][bundle.features]
    path = tmp_path / "p.sqlite"
    writer = PredictionLog(path, bundle.fields, bundle.task, background=False)
    writer.append("r0", "v2", [(record.astype(object).iloc[0].to_dict(), 0.5, True, 0.0)])
    writer.close()
    with pytest.raises(DataError, match=r"holds no rows of model version 'v1'.*v2"):
        windows.read_log(path, "v1")


# ------------------------------------------------------------------ end to end


def production_file(splits, tmp_path: Path, change=None) -> Path:
    rows = pd.concat([splits["valid"], splits["test"]], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)  # no order effects
    if change is not None:
        rows = change(rows)
    path = tmp_path / "production.csv"
    rows.to_csv(path, index=False)
    return path


def test_monitor_values_each_window_and_stays_quiet_without_drift(packaged, tmp_path):
    cfg, splits, directory, profile = packaged
    source = production_file(splits, tmp_path)
    config = configured(cfg, input=str(source), window={"by": "count", "size": 100})
    result = monitor(config, bundle=load_bundle(directory), **outputs(tmp_path))
    assert result["alerts"] == []
    assert len(result["windows"]) == 4
    for window in result["windows"]:
        value = window["value"]
        assert value["labels"]["share"] == 1.0  # the file holds the target column
        assert value["at_risk"]["now"] == "realised"
        est = value["estimated"]
        assert est["low"] < est["value_per_period"] < est["high"]
        assert {t["name"] for t in window["drift"]["tests"]} == {*profile["features"], "score"}
    # the record, the numbers for DVC and the page
    written = json.loads((tmp_path / "reports" / "monitor.json").read_text())
    assert written["summary"]["windows"] == 4
    metrics = json.loads((tmp_path / "metrics" / "monitor.json").read_text())
    assert set(metrics["by_window"]) == {w["window"] for w in result["windows"]}
    page = (tmp_path / "reports" / "monitor.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64" in page
    assert "<script" not in page and "http" not in page.split("<body>")[1]


def test_a_unit_change_raises_an_alert_naming_the_feature_and_the_money(packaged, tmp_path):
    cfg, splits, directory, _ = packaged

    def in_days(rows):  # duration in days, not months, in every row
        rows["duration_in_month"] = rows["duration_in_month"] * 30
        return rows

    source = production_file(splits, tmp_path, in_days)
    config = configured(cfg, input=str(source), window={"by": "all"}, fail_on=["drift"])
    result = monitor(config, bundle=load_bundle(directory), **outputs(tmp_path))
    drift = [a for a in result["alerts"] if a["kind"] == "drift"]
    assert drift and "duration_in_month" in drift[0]["features"]
    assert "duration_in_month" in drift[0]["message"] and "EUR/month" in drift[0]["message"]
    assert drift[0]["money"] == result["windows"][0]["value"]["at_risk"]["value_per_period"]
    estimated = result["windows"][0]["value"]["estimated"]
    assert not estimated["reliable"] and "duration_in_month" in estimated["warnings"][-1]
    with pytest.raises(MonitorAlertError) as caught:
        finish(result)
    assert caught.value.exit_code == 4
    assert (tmp_path / "reports" / "monitor.html").is_file()  # written before failing


def test_a_production_file_missing_a_feature_writes_nothing(packaged, tmp_path):
    cfg, splits, directory, _ = packaged
    source = production_file(
        splits, tmp_path, lambda rows: rows.drop(columns=["duration_in_month"])
    )
    config = configured(cfg, input=str(source))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['duration_in_month'\]"):
        monitor(config, bundle=load_bundle(directory), **outputs(tmp_path))
    assert not any(p.exists() for p in outputs(tmp_path).values())


def test_the_command_names_a_misspelt_monitor_key(packaged, tmp_path, capsys):
    import yaml

    cfg = packaged[0]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
    assert cli_main(["monitor", "--params", str(params), "monitor.windw.by=time"]) == 2
    err = capsys.readouterr().err
    assert "monitor.windw" in err and "window" in err and "Traceback" not in err
    assert cli_main(["monitor", "--params", str(params), "data.target=x"]) == 2
    assert "monitor.KEY=VALUE" in capsys.readouterr().err


def test_monitor_reads_the_prediction_log_and_labels_that_arrive_later(packaged, tmp_path):
    """The service's log (serving.log) as input; labels for half the requests, by
    request_id: realised value on those, label completeness reported."""
    from valuegate.serving.log import PredictionLog

    cfg, splits, directory, _ = packaged
    bundle = load_bundle(directory)
    rows = pd.concat([splits["valid"], splits["test"]], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=1).reset_index(drop=True)
    clean = validate_chunk(rows, bundle.fields)[0]
    scores = bundle.score_frame(clean)
    records = clean[bundle.features].astype(object).where(clean.notna(), None)
    path = tmp_path / "predictions.sqlite"
    writer = PredictionLog(path, bundle.fields, bundle.task, segment_rows=150, background=False)
    for i, (record, score) in enumerate(zip(records.to_dict("records"), scores, strict=True)):
        writer.append(f"r{i}", "v1", [(record, float(score), bool(score >= POINT), 0.0)])
    writer.close()
    labels = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(0, len(rows), 2)],
            cfg.data.target: rows[cfg.data.target].iloc[::2].to_numpy(),
        }
    )
    labels_path = tmp_path / "labels.parquet"
    labels.to_parquet(labels_path)
    config = configured(cfg, input=str(path), labels=str(labels_path), window={"by": "all"})
    result = monitor(config, bundle=bundle, **outputs(tmp_path))
    value = result["windows"][0]["value"]
    assert result["windows"][0]["rows"] == len(rows)
    assert value["labels"]["rows"] == len(labels) and value["labels"]["share"] == 0.5
    assert value["realised"]["rows"] == len(labels)
    assert value["at_risk"]["now"] == "realised"
    # rows another version also wrote to the log are left out: their scores are not v1's
    writer = PredictionLog(path, bundle.fields, bundle.task, segment_rows=150, background=False)
    writer.append("x", "v2", [(records.iloc[0].to_dict(), 0.5, True, 0.0)])
    writer.close()
    again = monitor(config, bundle=bundle, **outputs(tmp_path / "again"))
    assert again["windows"][0]["rows"] == len(rows)


@pytest.mark.slow
def test_the_pipeline_packages_a_profile_and_monitors_the_champion(ran_project):
    """`dvc repro` (the shared full run): package stores profile.json in the bundle, hashed;
    the monitor stage values the example's rows with the champion from it."""
    registry = ran_project / "models" / "registry" / "german_credit"
    champion = json.loads((registry / "champion.json").read_text())["champion"]
    bundle = load_bundle(registry / champion)
    assert PROFILE_FILE in bundle.manifest["files"]
    record = json.loads((ran_project / "reports" / "monitor.json").read_text())
    assert record["reference"]["profile"].endswith(PROFILE_FILE)
    window = record["windows"][0]
    assert window["rows"] == 1000 and window["value"]["realised"]["rows"] == 1000
    assert json.loads((ran_project / "metrics" / "monitor.json").read_text())["summary"]
    assert (ran_project / "reports" / "monitor.html").read_text().startswith("<!DOCTYPE html>")


def test_a_type_change_and_new_categories_raise_a_schema_alert(packaged, tmp_path):
    cfg, splits, directory, _ = packaged

    def broken(rows):
        rows["duration_in_month"] = rows["duration_in_month"].astype(object)
        rows.loc[::10, "duration_in_month"] = "twelve"  # text where a number belongs
        rows.loc[::5, "purpose"] = "crypto"  # a level training never saw
        return rows

    source = production_file(splits, tmp_path, broken)
    config = configured(cfg, input=str(source), window={"by": "all"})
    result = monitor(config, bundle=load_bundle(directory), **outputs(tmp_path))
    schema = result["windows"][0]["schema"]
    assert schema["refused_by_column"] == {"duration_in_month": 40}
    assert schema["unseen_categories"]["purpose"] == 80
    alert = next(a for a in result["alerts"] if a["kind"] == "schema")
    assert alert["features"] == ["duration_in_month", "purpose"]
    assert "duration_in_month: 40 row(s) refused" in alert["message"]


def test_regression_labels_come_back_as_a_writable_copy():
    """A float target column (pandas hands back a read-only view of it) is a regression
    label vector with NaN where the label has not arrived; the frame is not touched."""
    from valuegate.monitor.windows import label_vector

    target = pd.Series([1.5, np.nan, 3.0], name="y")
    y = label_vector(target, "regression", None)
    assert y[0] == 1.5 and np.isnan(y[1]) and y[2] == 3.0
    assert target.tolist()[0] == 1.5 and np.isnan(target.iloc[1])
