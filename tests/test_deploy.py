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
from tests.inprocess import InProcess
from valuegate.bundle import HOT_PIPELINE, HOT_XGB, decide, load_bundle, sha256_file
from valuegate.business import value_model
from valuegate.deploy import (
    ChampionEvidence,
    budget_attempt,
    deploy_decision,
    fresh_rows,
    spend,
    too_good,
)
from valuegate.errors import ArtifactError, DataError
from valuegate.models import predict_scores
from valuegate.registry import Registry
from valuegate.row_lineage import lineage_columns, read_rows, row_hashes, row_set
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
    assert set(manifest["files"]) == {
        "pipeline.skops", "pipeline.skops.sha256", "booster.ubj", "train_rows.npy",
        "valid_rows.npy",
    }  # fmt: skip
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
    rows["duration_in_month"] = rows["duration_in_month"].astype(object)
    rows.loc[6, "duration_in_month"] = "soon"  # (an unseen category is scored, not bad)
    rows.loc[40, "credit_amount"] = "lots"
    rows.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"row 7: duration_in_month: not a number"):
        predict_file(bundle, tmp_path / "in.csv", out, chunk_size=10, on_error="fail")
    assert not out.exists()  # atomic: a failed run leaves no output
    assert not list(tmp_path.glob(".out.parquet*"))
    report = tmp_path / "report.txt"
    with open(report, "w") as handle:
        summary = predict_file(
            bundle, tmp_path / "in.csv", out, chunk_size=10, on_error="skip", report=handle
        )
    counts = {k: summary[k] for k in ("rows_in", "rows_scored", "rows_skipped")}
    assert counts == {"rows_in": 50, "rows_scored": 48, "rows_skipped": 2}
    text = report.read_text()
    assert "skipped row 7: duration_in_month" in text and "skipped row 41: credit_amount" in text
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


OK = {"value_per_period": 100_000, "roc_auc": 0.8}
BEST = 0.45  # a good threshold for `good` (positives around 0.8, negatives around 0.2)


def _champion(scores, point=BEST, fresh=None, name="v1"):
    fresh = np.ones(len(scores), dtype=bool) if fresh is None else fresh
    return ChampionEvidence(name, scores, point, fresh, {"fresh": int(fresh.sum())})


def _attempt(k=1, alpha=0.05):
    return budget_attempt({"test_rows": {}}, "fp", {"model": f"m{k}"}, alpha, 400)


def test_gate_refuses_below_good_enough():
    cfg, model, y, good, _ = _gate_inputs()
    low = {"value_per_period": 75_000, "roc_auc": 0.8}
    record = deploy_decision(cfg, model, "xgboost", low, y, good, None, BEST)
    assert record["packaged"] is False
    assert "below the 90,000 EUR/month" in record["reason"]


def test_refused_deploy_names_the_failing_metric_and_its_value():
    cfg, model, y, good, _ = _gate_inputs()
    record = deploy_decision(
        cfg, model, "xgboost", {"value_per_period": 100_000, "roc_auc": 0.655}, y, good, None, BEST
    )
    assert not record["packaged"] and record["refused"]
    assert "roc_auc 0.655 < 0.7" in record["reason"]


def test_gate_packages_without_champion_and_compares_with_one():
    cfg, model, y, good, noise = _gate_inputs()
    first = deploy_decision(cfg, model, "xgboost", OK, y, good, None, BEST)
    assert first["packaged"] and first["promote"] and "no champion yet" in first["reason"]
    same = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST, _champion(good), _attempt()
    )
    assert not same["packaged"] and same["versus_champion"]["ci_lower"] == 0
    better = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST, _champion(noise, 0.5), _attempt()
    )
    assert better["packaged"] and better["versus_champion"]["ci_lower"] > 0
    assert better["versus_champion"]["rows"] == 400 and "400 test rows" in better["reason"]
    worse = deploy_decision(
        cfg, model, "xgboost", OK, y, noise, None, 0.5, _champion(good), _attempt()
    )
    assert not worse["packaged"] and "does not beat champion v1" in worse["reason"]


def test_champion_is_compared_only_on_rows_neither_model_saw():
    # The champion memorised the first 300 rows (perfect scores there) and is weaker than
    # the new model on the 100 rows it never saw. On all rows the champion looks better;
    # on the fresh rows the new model is.
    cfg, model, y, good, _ = _gate_inputs()
    weak = np.clip(y * 0.5 + np.random.default_rng(5).normal(0.3, 0.2, 400), 0, 1)
    fresh = np.arange(400) >= 300
    champion_scores = np.where(fresh, weak, y * 0.9 + 0.05)
    record = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST,
        _champion(champion_scores, 0.4, fresh=fresh), _attempt(),
    )  # fmt: skip
    versus = record["versus_champion"]
    assert (
        versus["rows"] == 100
        and "on the 100 test rows neither model has seen" in (record["reason"])
    )
    on_fresh = model.value_at_point(y[fresh], good[fresh], BEST) - model.value_at_point(
        y[fresh], weak[fresh], 0.4
    )
    assert versus["observed_uplift"] == pytest.approx(on_fresh) and on_fresh > 0
    unfair = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST,
        _champion(champion_scores, 0.4), _attempt(),
    )  # fmt: skip
    assert unfair["versus_champion"]["observed_uplift"] < 0 and not unfair["packaged"]


def test_too_few_fresh_rows_packages_without_promoting():
    cfg, model, y, good, noise = _gate_inputs()
    fresh = np.arange(400) < 40  # deploy.min_fresh_rows is 100
    record = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST, _champion(noise, fresh=fresh), _attempt()
    )
    assert record["packaged"] and not record["promote"] and record["refused"]
    assert "versus_champion" not in record  # no comparison on unfair evidence
    assert "only 40 of the 400 test rows" in record["reason"]
    assert "deploy.min_fresh_rows: 100" in record["reason"]
    assert "valuegate models promote" in record["reason"]
    unknown = ChampionEvidence("v1", noise, 0.5, None, {"note": "it records no rows"})
    record = deploy_decision(cfg, model, "xgboost", OK, y, good, None, BEST, unknown, _attempt())
    assert record["packaged"] and not record["promote"] and "records no rows" in record["reason"]


def test_too_few_fresh_rows_of_a_class_packages_without_promoting():
    """Enough fresh rows, but a handful of one class: no comparison (a few rare positives
    cannot show a rare large loss: tests/test_promotion_soundness.py)."""
    cfg, model, y, good, noise = _gate_inputs()
    positives = np.flatnonzero(y == 1)
    fresh = (y == 0) | np.isin(np.arange(len(y)), positives[:9])
    assert fresh.sum() >= cfg.deploy.min_fresh_rows
    record = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST, _champion(noise, fresh=fresh), _attempt()
    )
    assert record["packaged"] and not record["promote"] and "versus_champion" not in record
    assert "hold only 9 of one class (deploy.min_fresh_per_class: 10)" in record["reason"]
    fresh[positives[9]] = True
    record = deploy_decision(
        cfg, model, "xgboost", OK, y, good, None, BEST, _champion(noise, fresh=fresh), _attempt()
    )
    assert "versus_champion" in record


def test_models_are_compared_at_the_operating_points_they_ship_with():
    # The new model ranks perfectly but ships with a threshold that flags nobody; the
    # champion ships with a sound one. Re-choosing thresholds on test (today's rule)
    # would promote the new model; at the shipped points it loses.
    cfg, model, y, good, _ = _gate_inputs()
    perfect = y * 0.5 + 0.25
    record = deploy_decision(
        cfg, model, "xgboost", OK, y, perfect, None, 0.99, _champion(good), _attempt()
    )
    assert record["versus_champion"]["new_point"] == 0.99
    assert record["versus_champion"]["champion_point"] == BEST
    flag_none = model.value_at_point(y, perfect, 0.99)
    champion_value = model.value_at_point(y, good, BEST)
    assert record["versus_champion"]["observed_uplift"] == pytest.approx(flag_none - champion_value)
    assert not record["packaged"]


def test_fresh_rows_exclude_the_rows_either_model_saw():
    # 1,000 rows, split twice (two seeds): the champion saw train + valid of the first split,
    # the new model those of the second. Fresh test rows = the second test split minus
    # every row the champion saw, by id and by content alike.
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"id": np.arange(1000), "x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000),
         "y": rng.choice(["good", "bad"], 1000)}
    )  # fmt: skip
    first, second = rng.permutation(1000), rng.permutation(1000)
    old = {"train": first[:600], "valid": first[600:800]}
    new = {"train": second[:600], "valid": second[600:800]}
    test = second[800:]
    expected = ~np.isin(test, first[:800])
    for id_column in ("id", None):
        # content rows: without the id, the row is the only identity it has
        rows = frame if id_column else frame.drop(columns="id")
        columns = lineage_columns(rows, id_column)
        # the champion's run read the columns in another order and x as text
        shuffled = rows[columns[::-1]].astype({"x": str}) if not id_column else rows
        seen_old = {k: row_set(row_hashes(shuffled.iloc[v], columns)) for k, v in old.items()}
        seen_new = {k: row_set(row_hashes(rows.iloc[v], columns)) for k, v in new.items()}
        test_hashes = row_hashes(rows.iloc[test].reset_index(drop=True), columns)
        fresh, counts = fresh_rows(test_hashes, seen_old, test_hashes, seen_new)
        assert np.array_equal(fresh, expected)
        assert 0 < counts["fresh"] == expected.sum() < len(test)
        assert counts["champion_train"] == np.isin(test, first[:600]).sum()
        assert counts["new_model_train"] == counts["new_model_valid"] == 0


def test_row_hashes_ignore_column_order_and_dtype_quirks():
    a = pd.DataFrame({"x": [1, 2, None], "c": ["a", "3", None], "y": ["good", "bad", "bad"]})
    b = pd.DataFrame(
        {"y": ["good", "bad", "bad"], "c": ["a", 3.0, np.nan], "x": [1.0, 2.0, np.nan]}
    )
    columns = lineage_columns(a, None)
    assert np.array_equal(row_hashes(a, columns), row_hashes(b, columns))
    c = b.assign(y=["good", "bad", "good"])  # the target is part of the row
    assert (row_hashes(a, columns) != row_hashes(c, columns)).tolist() == [False, False, True]


def test_budget_spends_alpha_over_repeated_attempts_and_renews_with_new_rows():
    ledger: dict = {"test_rows": {}}
    levels = []
    for k in range(1, 5):
        key = {"model": f"m{k}", "predictions_sha256": "x", "champion": "v1"}
        attempt = budget_attempt(ledger, "rows-1", key, 0.05, 200)
        levels.append(attempt["alpha"])
        assert attempt["attempt"] == k and attempt["left"] == pytest.approx(0.05 * 2**-k)
        ledger = spend(ledger, attempt, key, passed=False)
    assert levels == pytest.approx([0.025, 0.0125, 0.00625, 0.003125])
    # a rerun of the same look does not spend again
    again = budget_attempt(ledger, "rows-1", {"model": "m2", "predictions_sha256": "x",
                                              "champion": "v1"}, 0.05, 200)  # fmt: skip
    assert again["repeat"] and again["alpha"] == 0.0125
    assert spend(ledger, again, {}, True) is ledger
    # fresh labelled data: a new test split has the whole budget again
    fresh = budget_attempt(ledger, "rows-2", {"model": "m5"}, 0.05, 200)
    assert fresh["attempt"] == 1 and fresh["alpha"] == 0.025


def _equal_challengers(n_sequences: int, n_rows: int = 500, attempts: int = 10) -> float:
    """Share of sequences in which any of `attempts` equally good challengers in a row,
    each compared with the current champion on the same test rows, is promoted."""
    base = config()  # (composing conf/ with Hydra costs ~0.5 s: once)
    cfg = base.model_copy(update={"deploy": base.deploy.model_copy(
        update={"n_resamples": 300, "min_fresh_rows": 1})})  # fmt: skip
    model = value_model(cfg)
    rng = np.random.default_rng(12)
    shift = 2**0.5 * 0.8416  # binormal scores with ROC AUC 0.8
    promoted = 0
    for _ in range(n_sequences):
        y = (rng.uniform(size=n_rows) < 0.3).astype(int)
        ledger: dict = {"test_rows": {}}
        champion = 1 / (1 + np.exp(-(y * shift + rng.normal(size=n_rows) - 1.2)))
        any_promoted = False
        for k in range(attempts):
            new = 1 / (1 + np.exp(-(y * shift + rng.normal(size=n_rows) - 1.2)))
            key = {"model": f"m{k}"}
            attempt = budget_attempt(ledger, "rows", key, 0.05, n_rows)
            record = deploy_decision(
                cfg, model, f"m{k}", OK, y, new, None, 0.2, _champion(champion, 0.2), attempt
            )
            ledger = spend(ledger, attempt, key, record["promote"])
            if record["promote"]:
                any_promoted, champion = True, new
        promoted += any_promoted
    return promoted / n_sequences


def test_equal_challengers_in_a_row_stay_within_the_budget():
    # issue 12: 10 equal challengers in a row on the same 500 test rows; with thresholds
    # re-chosen on test and no budget 26% of sequences promoted one. The budget is 5%;
    # 60 sequences: a loose bound (the bench measures it with 1,000).
    assert _equal_challengers(60) <= 0.12


def test_too_good_to_be_true_blocks_with_metric_value_and_bound():
    cfg, model, y, good, _ = _gate_inputs()
    leak = {"value_per_period": 150_000, "roc_auc": 0.998}
    record = deploy_decision(cfg, model, "xgboost", leak, y, good, None, BEST)
    assert not record["packaged"] and record["too_good"]["blocked"]
    assert "test roc_auc 0.998 > 0.99 (deploy.too_good.roc_auc)" in record["reason"]
    honest = {"metric": "roc_auc", "value": 0.78, "rows": 800, "features": [], "how": "cv"}
    high = {"value_per_period": 150_000, "roc_auc": 0.95}
    record = deploy_decision(cfg, model, "xgboost", high, y, good, None, BEST, honest=honest)
    assert not record["packaged"]
    assert (
        "test roc_auc 0.950 > 0.880 = the assessment's honest estimate 0.780" in (record["reason"])
    )
    # without an honest estimate only the ceiling applies; near the estimate it passes
    assert deploy_decision(cfg, model, "xgboost", high, y, good, None, BEST)["packaged"]
    fair = {"value_per_period": 150_000, "roc_auc": 0.82}
    assert deploy_decision(cfg, model, "xgboost", fair, y, good, None, BEST, honest=honest)[
        "packaged"
    ]
    # a regression model is judged on R2, an honest estimate of another metric is ignored
    assert too_good("regression", {"r2": 0.7}, cfg.deploy.too_good, honest)["blocked"] is False
    assert too_good("regression", {"r2": 0.995}, cfg.deploy.too_good, None)["blocked"]


def test_bundle_records_the_rows_its_model_saw(built, tmp_path):
    directory, _pipeline, splits, _schema = built
    bundle = load_bundle(directory)
    lineage = bundle.manifest["row_lineage"]
    assert lineage["by"] == "content" and "creditability" in lineage["columns"]
    assert {"train_rows.npy", "valid_rows.npy"} <= set(bundle.manifest["files"])
    train = read_rows(directory, bundle.manifest, "train")
    assert train.dtype == np.uint64 and len(train) == lineage["rows"]["train"]
    hashes = row_hashes(splits["train"], lineage["columns"])
    assert np.isin(hashes, train).all()
    assert not np.isin(row_hashes(splits["test"], lineage["columns"]), train).any()
    # an altered row file is refused by the loader and by the lineage reader alike
    copy = _copy(directory, tmp_path)
    np.save(copy / "train_rows.npy", train[:10], allow_pickle=False)
    with pytest.raises(ArtifactError, match=r"train_rows\.npy was altered"):
        load_bundle(copy)
    with pytest.raises(ArtifactError, match=r"train_rows\.npy was altered"):
        read_rows(copy, bundle.manifest, "train")


def test_the_honest_estimate_is_read_defensively(tmp_path):
    from valuegate.stages.package import read_honest_estimate

    path = tmp_path / "assessment.json"
    assert read_honest_estimate(path)[0] is None and "not found" in read_honest_estimate(path)[1]
    for broken in ("{not json", "[1, 2]", '{"honest_estimate": null}', '{"other": 1}'):
        path.write_text(broken)
        estimate, note = read_honest_estimate(path)
        assert estimate is None and "only the deploy.too_good ceiling applies" in note
    path.write_text(json.dumps({"honest_estimate": {"metric": "roc_auc", "value": 0.78}}))
    assert read_honest_estimate(path)[0] == {"metric": "roc_auc", "value": 0.78}


def _registry_with_champion(tmp_path: Path) -> Path:
    root = tmp_path / "reg"
    make_bundle(root / "v1", params={"n_estimators": 5})
    Registry(root).promote("v1")
    return root


@pytest.fixture
def here(monkeypatch, capsys) -> InProcess:
    """The `valuegate` command run in this process (tests/inprocess.py); its exit status
    and stderr as a real process are checked by test_cli_errors_are_clean."""
    return InProcess(monkeypatch, capsys)


def test_broken_champion_pointer_is_a_clear_error_everywhere(tmp_path, here):
    root = _registry_with_champion(tmp_path)
    raw_rows(5).to_csv(tmp_path / "in.csv", index=False)
    pointer = root / "champion.json"
    for broken in ('{"champion": "v1", "hist', '["v1"]'):  # truncated; not an object
        pointer.write_text(broken)
        for command in (
            ["predict", "--input", "in.csv", "--output", "out.parquet"],
            ["serve", "--port", "1"],
            ["models", "list"],
        ):
            result = here.cli([*command, "--registry", str(root)], tmp_path)
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            assert f"the champion pointer {pointer}" in result.stderr
            assert "valuegate models promote v1" in result.stderr
        assert not (tmp_path / "out.parquet").exists()
    # `models list` still shows the versions (to choose one), and promote repairs it
    assert "v1" in here.cli(["models", "list", "--registry", str(root)], tmp_path).stdout
    repaired = here.cli(["models", "promote", "v1", "--registry", str(root)], tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(pointer.read_text()) == {"champion": "v1", "history": ["v1"]}


def test_models_list_shows_a_tampered_version(tmp_path, here):
    root = _registry_with_champion(tmp_path)
    make_bundle(root / "v2", version="v2", params={"n_estimators": 6})
    listed = here.cli(["models", "list", "--registry", str(root)], tmp_path)
    assert "TAMPERED" not in listed.stdout and "* v1" in listed.stdout
    data = bytearray((root / "v1" / "booster.ubj").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "v1" / "booster.ubj").write_bytes(bytes(data))
    (root / "v2" / "notes.txt").write_text("added later")
    listed = here.cli(["models", "list", "--registry", str(root)], tmp_path)
    lines = listed.stdout.splitlines()
    assert any(
        line.startswith("* v1") and "TAMPERED: booster.ubj no longer matches its sha256" in line
        for line in lines
    ), listed.stdout
    assert any("v2" in line and "TAMPERED: notes.txt is not in the manifest" in line
               for line in lines), listed.stdout  # fmt: skip


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
    assert compose().deploy.min_fresh_rows == 100
    assert compose("deploy.too_good.roc_auc=null").deploy.too_good.roc_auc is None
    with pytest.raises(ConfigError, match=r"deploy\.too_good\.roc_auc"):
        compose("deploy.too_good.roc_auc=1.5")
    with pytest.raises(ConfigError, match=r"deploy\.too_good.*margin_over_honst"):
        compose("+deploy.too_good.margin_over_honst=0.2")
    with pytest.raises(ConfigError, match=r"deploy\.min_fresh_rows"):
        compose("deploy.min_fresh_rows=0")


CRASHING_WRITER = """
import os, sys
sys.path.insert(0, sys.argv[2])
import valuegate.bundle.store as bundle
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


def test_a_first_chunk_of_only_bad_rows_is_skipped_without_breaking_the_output(built, tmp_path):
    bundle = load_bundle(built[0])
    rows = raw_rows(30)
    rows["credit_amount"] = rows["credit_amount"].astype(object)
    rows.loc[:9, "credit_amount"] = "lots"  # the whole first chunk
    rows.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    summary = predict_file(bundle, tmp_path / "in.csv", out, chunk_size=10, on_error="skip")
    assert (summary["rows_scored"], summary["rows_skipped"]) == (20, 10)
    scored = pd.read_parquet(out)
    assert scored["row"].tolist() == list(range(11, 31))
    assert scored["decision"].dtype == bool
