"""The bundle, the registry, the deploy gate and batch scoring (fast: no DVC)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.deploy_helpers import config, make_bundle, raw_rows
from valuegate.bundle import HOT_PIPELINE, HOT_XGB, decide, load_bundle, sha256_file
from valuegate.business import value_model
from valuegate.deploy import deploy_decision
from valuegate.errors import ArtifactError, DataError
from valuegate.models import predict_scores
from valuegate.registry import Registry
from valuegate.serving.batch import predict_file


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bundle") / "v1"
    pipeline, splits, schema = make_bundle(directory)
    return directory, pipeline, splits, schema


def test_round_trip_scores_identical(built):
    directory, pipeline, splits, schema = built
    bundle = load_bundle(directory)
    assert bundle.hot_path == HOT_XGB
    test = splits["test"]
    expected = predict_scores(pipeline, test[schema.features], "binary")
    assert np.array_equal(bundle.score_frame(test[schema.features]), expected)
    singles = [bundle.score_record(r) for r in test[schema.features].to_dict("records")]
    assert np.array_equal(np.array(singles), expected)
    # the skops pipeline in the bundle scores identically too
    assert np.array_equal(
        predict_scores(bundle.pipeline, test[schema.features], "binary"), expected
    )
    manifest = bundle.manifest
    names = [f["name"] for f in manifest["input"]["fields"]]
    assert names[: len(schema.numeric)] == schema.numeric
    purpose = next(f for f in manifest["input"]["fields"] if f["name"] == "purpose")
    assert purpose["dtype"] == "category" and "radio/television" in purpose["categories"]
    assert set(manifest["files"]) == {"pipeline.skops", "pipeline.skops.sha256", "booster.ubj"}
    for name, digest in manifest["files"].items():
        assert sha256_file(directory / name) == digest
    assert "scikit-learn" in manifest["libraries"]


def test_decision_and_expected_value_come_from_the_value_model(built):
    directory, *_ = built
    bundle = load_bundle(directory)
    scores = np.array([0.1, 0.5])
    out = decide(bundle, scores)
    assert out["decision"].tolist() == [False, True]  # threshold 0.3
    # german credit: approve (not flagged) = 0.1 * -1500 + 0.9 * 300; reject = 0
    assert out["expected_value"].tolist() == pytest.approx([0.1 * -1500 + 0.9 * 300, 0.0])


def _copy(directory: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(directory, tmp_path / "copy"))


def test_tampered_file_is_refused(built, tmp_path):
    copy = _copy(built[0], tmp_path)
    data = bytearray((copy / "booster.ubj").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "booster.ubj").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"booster.ubj was altered"):
        load_bundle(copy)


def test_tampered_manifest_and_extra_file_are_refused(built, tmp_path):
    copy = _copy(built[0], tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["decision"]["value"] = 0.99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"manifest\.json was altered"):
        load_bundle(copy)
    copy2 = Path(__import__("shutil").copytree(built[0], tmp_path / "copy2"))
    (copy2 / "evil.py").write_text("print('x')")
    with pytest.raises(ArtifactError, match="does not list"):
        load_bundle(copy2)


def _rehash(copy: Path) -> None:
    """What an attacker who rewrites every hash would do: only the type check is left."""
    (copy / "pipeline.skops.sha256").write_text(sha256_file(copy / "pipeline.skops") + "\n")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = {
        p.name: sha256_file(p)
        for p in sorted(copy.iterdir())
        if p.is_file() and not p.name.startswith("manifest.json")
    }
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "manifest.json.sha256").write_text(sha256_file(copy / "manifest.json") + "\n")


def test_untrusted_type_is_refused(built, tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    copy = _copy(built[0], tmp_path)
    evil = Pipeline([("f", FunctionTransformer(subprocess.call))])
    sio.dump(evil, copy / "pipeline.skops")
    _rehash(copy)
    with pytest.raises(ArtifactError, match="outside valuegate's trusted list"):
        load_bundle(copy)


def test_other_estimators_fall_back_to_the_pipeline(tmp_path):
    pipeline, splits, schema = make_bundle(
        tmp_path / "rf", "random_forest", params={"n_estimators": 20}
    )
    bundle = load_bundle(tmp_path / "rf")
    assert bundle.hot_path == HOT_PIPELINE
    assert "not impute + one-hot -> xgboost" in bundle.manifest["scoring"]["fallback_reason"]
    test = splits["test"][schema.features]
    expected = predict_scores(pipeline, test, "binary")
    # a forest averages its trees over threads: equal up to summation order
    np.testing.assert_allclose(bundle.score_frame(test), expected, rtol=1e-12)
    assert bundle.score_record(test.iloc[0].to_dict()) == pytest.approx(expected[0], rel=1e-12)


# --------------------------------------------------------------------------- batch


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunked_batch_equals_whole(built, tmp_path, suffix):
    bundle = load_bundle(built[0])
    rows = raw_rows(2500)
    source = tmp_path / f"in{suffix}"
    rows.to_csv(source, index=False) if suffix == ".csv" else rows.to_parquet(source)
    whole = predict_file(bundle, source, tmp_path / "whole.parquet", chunk_size=10_000)
    chunked = predict_file(bundle, source, tmp_path / "chunked.parquet", chunk_size=333)
    assert whole["rows_scored"] == chunked["rows_scored"] == 2500
    a = pd.read_parquet(tmp_path / "whole.parquet")
    b = pd.read_parquet(tmp_path / "chunked.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert a["row"].tolist() == list(range(1, 2501))
    features = [f["name"] for f in bundle.fields]
    direct = predict_scores(bundle.pipeline, rows[features], "binary")
    assert np.array_equal(a["score"].to_numpy(), direct)


def test_bad_rows_fail_or_skip_with_row_numbers(built, tmp_path):
    bundle = load_bundle(built[0])
    rows = raw_rows(50)
    rows["credit_amount"] = rows["credit_amount"].astype(object)
    rows.loc[6, "purpose"] = "spaceship"
    rows.loc[40, "credit_amount"] = "lots"
    rows.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"row 7: purpose: value not among the allowed"):
        predict_file(bundle, tmp_path / "in.csv", out, chunk_size=10, on_error="fail")
    assert not out.exists()  # atomic: a failed run leaves no output
    assert not list(tmp_path.glob(".out.parquet*"))
    report = tmp_path / "report.txt"
    with open(report, "w") as handle:
        summary = predict_file(
            bundle, tmp_path / "in.csv", out, chunk_size=10, on_error="skip", report=handle
        )
    assert summary == {"rows_in": 50, "rows_scored": 48, "rows_skipped": 2}
    text = report.read_text()
    assert "skipped row 7: purpose" in text and "skipped row 41: credit_amount" in text
    assert 7 not in pd.read_parquet(out)["row"].tolist()


def test_missing_column_is_a_clear_error(built, tmp_path):
    bundle = load_bundle(built[0])
    raw_rows(5).drop(columns=["purpose"]).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['purpose'\]"):
        predict_file(bundle, tmp_path / "in.csv", tmp_path / "o.parquet")


# --------------------------------------------------------------------------- registry


def test_registry_promote_rollback(tmp_path):
    registry = Registry(tmp_path / "reg")
    with pytest.raises(ArtifactError, match="no champion yet"):
        registry.path_of("champion")
    assert registry.next_version() == "v1"
    make_bundle(tmp_path / "reg" / "v1", params={"n_estimators": 5})
    make_bundle(tmp_path / "reg" / "v2", version="v2", params={"n_estimators": 6})
    (tmp_path / "reg" / ".v3.tmp").mkdir()  # an unfinished write is not a version
    assert registry.versions() == ["v1", "v2"] and registry.next_version() == "v3"
    registry.promote("v1")
    registry.promote("v2")
    assert registry.champion == "v2"
    assert [r["champion"] for r in registry.listing()] == [False, True]
    assert registry.rollback() == "v1" and registry.champion == "v1"
    with pytest.raises(ArtifactError, match="nothing to roll back"):
        registry.rollback()
    with pytest.raises(ArtifactError, match="cannot promote 'v9'"):
        registry.promote("v9")


# --------------------------------------------------------------------------- the gate


def _gate_inputs():
    cfg = config()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 400), 0, 1)
    noise = rng.uniform(0, 1, 400)
    return cfg, value_model(cfg), y, good, noise


def test_gate_refuses_below_good_enough():
    cfg, model, y, good, _ = _gate_inputs()
    record = deploy_decision(
        cfg, model, "xgboost", {"value_per_period": 75_000, "roc_auc": 0.8}, y, good, None
    )
    assert record["packaged"] is False
    assert "below the 90,000 EUR/month" in record["reason"]


def test_gate_packages_without_champion_and_compares_with_one():
    cfg, model, y, good, noise = _gate_inputs()
    ok = {"value_per_period": 100_000, "roc_auc": 0.8}
    first = deploy_decision(cfg, model, "xgboost", ok, y, good, None)
    assert first["packaged"] and "no champion yet" in first["reason"]
    same = deploy_decision(cfg, model, "xgboost", ok, y, good, None, "v1", good)
    assert not same["packaged"] and same["versus_champion"]["ci_lower"] == 0
    better = deploy_decision(cfg, model, "xgboost", ok, y, good, None, "v1", noise)
    assert better["packaged"] and better["versus_champion"]["ci_lower"] > 0
    worse = deploy_decision(cfg, model, "xgboost", ok, y, noise, None, "v1", good)
    assert not worse["packaged"] and "does not beat champion v1" in worse["reason"]


def test_cli_errors_are_clean(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "valuegate.cli", "predict", "--registry", str(tmp_path),
         "--input", "x.csv", "--output", "y.parquet"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "has no champion yet" in result.stderr and "Traceback" not in result.stderr


def test_deploy_config_is_strict(compose):
    from valuegate.errors import ConfigError

    assert compose().deploy.serve.max_request_bytes == 1_048_576
    with pytest.raises(ConfigError, match=r"deploy\.serve.*max_requst_bytes"):
        compose("+deploy.serve.max_requst_bytes=10")
    with pytest.raises(ConfigError, match=r"deploy\.batch\.on_error"):
        compose("deploy.batch.on_error=ignore")


CRASHING_WRITER = """
import os, sys
sys.path.insert(0, sys.argv[2])
import valuegate.bundle as bundle
from tests.deploy_helpers import make_bundle

def crash(directory, manifest):  # the process dies after the files, before the manifest
    os._exit(9)

bundle._write_manifest = crash
make_bundle(__import__("pathlib").Path(sys.argv[1]))
"""


def test_a_crash_while_writing_leaves_no_bundle_that_looks_complete(tmp_path):
    target = tmp_path / "reg" / "v1"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(target), str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert not target.exists()
    leftovers = [p.name for p in (tmp_path / "reg").iterdir()]
    assert leftovers and all(name.startswith(".v1.") for name in leftovers)  # the temp dir
    assert Registry(tmp_path / "reg").versions() == []
