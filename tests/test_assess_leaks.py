"""Leaks in combination, the iterated leak remedy, the honest estimate, duplicates that are
distinct rows, and bad inputs the assessment must survive (issue 11 items 1, 6, 7, 8)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.synthetic import FLIGHTS_LEAKS, flights, identical_profiles
from tests.test_assess import frame, split3
from valuegate.assess.assessment import assess
from valuegate.assess.combined import CLOCK, DATE, NUMBER, pair_difference, time_kind
from valuegate.assess.findings import blocked_message
from valuegate.assess.inputs import AssessData, fmt
from valuegate.assess.remedies import remedied_splits
from valuegate.assess.report import render_html
from valuegate.config import compose_config
from valuegate.config.loading import validate
from valuegate.config.schema import AssessConfig
from valuegate.errors import ConfigError

FAST = AssessConfig(n_folds=3)


def table_data(df: pd.DataFrame, target: str, positive, **kw) -> AssessData:
    roles = {target, kw.get("id_column"), kw.get("time_column")}
    numeric = [c for c in df if c not in roles and pd.api.types.is_numeric_dtype(df[c])]
    categorical = [c for c in df if c not in roles and c not in numeric]
    return AssessData(
        splits=split3(df),
        task="binary",
        target=target,
        positive_label=positive,
        numeric=numeric,
        categorical=categorical,
        split_method=kw.pop("split_method", "stratified"),
        **kw,
    )


def flights_data(**kw) -> AssessData:
    return table_data(flights(**kw).drop(columns=["date"]), "status", "late")


def by_id(result) -> dict:
    return {f.id: f for f in result.findings}


def test_time_like_columns_are_recognised_by_values_and_names():
    df = flights(600, 1)
    assert time_kind(df["arr_time"]) == CLOCK  # hhmm clock times
    assert time_kind(df["sched_dep_time"]) == CLOCK
    assert time_kind(df["date"]) == DATE  # text that parses as dates
    assert time_kind(df["air_time"]) == NUMBER  # minutes: a time by name, not a clock
    assert time_kind(df["distance"]) is None
    assert time_kind(df["carrier"]) is None
    # 23:50 due, landed 00:10: 20 minutes late, not 23 hours 40 early
    late = pair_difference(pd.Series([10.0]), pd.Series([2350.0]), CLOCK)
    assert late.tolist() == [20.0]


def test_a_pair_of_clock_times_that_gives_the_target_away_blocks_naming_both():
    result = assess(flights_data(n=5000, seed=0, with_delay=False), FAST, seed=0)
    found = by_id(result)
    pair = found["combined_leakage:sched_arr_time+arr_time"]
    assert pair.severity == "block"
    assert "'sched_arr_time' + 'arr_time' give 'status' away together" in pair.title
    assert pair.evidence["auc"] > 0.99
    assert max(pair.evidence["auc_apart"].values()) < 0.7  # harmless apart
    # neither column blocks alone: only the combination does
    assert "target_leakage:arr_time" not in found
    assert "target_leakage:sched_arr_time" not in found
    # air_time leaks with the departure delay: found by the quick model's rounds
    assert found["combined_leakage:air_time"].severity == "block"
    assert "combined_leakage:dep_time" not in found  # the honest signal is not a culprit
    message = blocked_message(result.blocking, "conf/assess/default.yaml", "r.html")
    assert '- {id: "combined_leakage:sched_arr_time+arr_time", reason: ' in message
    assert "data.features.drop" in message


def test_drop_leaky_columns_iterates_until_nothing_leaks_and_gives_an_honest_estimate():
    config = AssessConfig(n_folds=3, remedies={"drop_leaky_columns": True})
    data = flights_data(n=5000, seed=2)
    result = assess(data, config, seed=0)
    assert not result.blocked
    assert set(FLIGHTS_LEAKS) <= set(result.dropped_columns)
    kept = remedied_splits(data.splits, result.dropped_columns, result.dropped_rows)
    assert not set(FLIGHTS_LEAKS) & set(kept["train"].columns)  # what the models read
    assert "dep_time" not in result.dropped_columns  # the legitimate signal stays
    rounds = result.figures["leakage_rounds"]
    assert len(rounds) >= 2 and rounds[0]["auc"] >= 0.95 and rounds[-1]["auc"] < 0.95
    assert rounds[0]["culprit"] == "air_time"
    honest = result.honest_estimate
    assert honest["metric"] == "roc_auc" and 0.6 < honest["value"] < 0.9  # well below 0.95
    assert not set(honest["features"]) & set(result.dropped_columns)
    assert honest["rows"] > 2000
    assert result.metrics()["honest_estimate"] == honest["value"]
    assert result.record()["honest_estimate"] == honest
    page = render_html(result, "t", "conf/assess/default.yaml")
    assert "Honest estimate" in page and "Leak rounds" in page


def test_distinct_customers_with_identical_profiles_warn_but_do_not_block():
    data = table_data(identical_profiles(4000, 0), "churn", "yes", id_column="customer_id")
    result = assess(data, FAST, seed=0)
    cross = by_id(result)["duplicates:cross_split"]
    assert cross.evidence["share_of_valid_and_test"] > 0.1  # many identical profiles...
    assert cross.severity == "warn"  # ...yet no copies: as often as within train
    assert "distinct rows with identical feature vectors" in cross.title
    assert "models are scored on rows they were trained on" not in cross.title
    assert "duplicates:shared_ids" not in by_id(result)
    assert not result.blocked


def test_an_id_repeated_across_splits_still_blocks():
    df = identical_profiles(4000, 1)
    df.loc[3600:3640, "customer_id"] = df.loc[0:40, "customer_id"].to_numpy()  # train ids
    data = table_data(df, "churn", "yes", id_column="customer_id")
    result = assess(data, FAST, seed=0)
    shared = by_id(result)["duplicates:shared_ids"]
    assert shared.severity == "block"
    assert shared.evidence["rows"] == {"valid": 0, "test": 41}
    assert "'customer_id'" in shared.title
    config = AssessConfig(n_folds=3, remedies={"drop_duplicates": True})
    remedied = assess(data, config, seed=0)
    # the shared ids' rows (test positions 400..440) go, with the within-split repeats
    assert set(range(400, 441)) <= set(remedied.dropped_rows["test"].tolist())
    assert not remedied.blocked


def test_copies_in_a_continuous_feature_space_block_even_with_copies_in_train():
    splits = split3(frame(1500, 4))
    train = splits["train"]
    splits["train"] = pd.concat([train, train.iloc[[3, 10, 20, 30, 40]]], ignore_index=True)
    splits["test"] = pd.concat([splits["test"], train.iloc[50:60]], ignore_index=True)
    data = AssessData(
        splits=splits,
        task="binary",
        target="y",
        positive_label="bad",
        numeric=["x1", "x2", "x3", "x4"],
        categorical=["city", "channel"],
    )
    cross = by_id(assess(data, FAST, seed=0))["duplicates:cross_split"]
    assert cross.severity == "block" and "copies" in cross.title
    assert cross.evidence["expected_share"] < 1e-6


def test_one_copied_row_is_worded_in_the_singular():
    splits = split3(frame(1500, 4))
    splits["test"] = pd.concat([splits["test"], splits["train"].iloc[[5]]], ignore_index=True)
    data = AssessData(splits, "binary", "y", "bad", ["x1", "x2", "x3", "x4"], ["city", "channel"])
    cross = by_id(assess(data, FAST, seed=0))["duplicates:cross_split"]
    assert cross.title.startswith("1 validation or test row (0.2%) repeats a whole row")
    assert "1 validation and test rows" not in cross.title
    assert fmt(-0.0001, ".3f") == "0.000" and fmt(-0.4, ".0f") == "0" and fmt(-1.5, ".1f") == "-1.5"


def _robust_cases():
    def all_empty_number(df):
        df["empty"] = np.nan
        return {}, "constant:empty"

    def all_empty_text(df):
        df["empty"] = pd.Series([None] * len(df), dtype=object)
        return {}, "constant:empty"

    def infinite(df):
        df.loc[::50, "x1"] = np.inf
        return {}, "infinite_values:x1"

    def listed_twice(df):
        return {"numeric": ["x1", "x2", "x3", "x4", "x1"]}, "listed_twice:x1"

    def numeric_and_categorical(df):
        return {"categorical": ["city", "channel", "x2"]}, "listed_twice:x2"

    def ten_thousand_levels(df):
        df["tail"] = [f"T{i}" for i in np.random.default_rng(0).integers(0, 10_000, len(df))]
        return {}, "high_cardinality:tail"

    def time_split_with_empty_dates(df):
        df["when"] = pd.date_range("2024-01-01", periods=len(df), freq="h")
        df.loc[::40, "when"] = pd.NaT
        return {"time_column": "when", "split_method": "time"}, "timeline:missing_times"

    return {
        f.__name__: f
        for f in (
            all_empty_number,
            all_empty_text,
            infinite,
            listed_twice,
            numeric_and_categorical,
            ten_thousand_levels,
            time_split_with_empty_dates,
        )
    }


@pytest.mark.parametrize("case", list(_robust_cases()))
def test_bad_inputs_give_a_finding_naming_the_column_not_a_traceback(case):
    df = frame(12_000 if case == "ten_thousand_levels" else 1200, 3)
    overrides, expected = _robust_cases()[case](df)
    kw = {k: overrides[k] for k in ("time_column", "split_method") if k in overrides}
    data = table_data(df, "y", "bad", **kw)
    data.numeric = overrides.get("numeric", data.numeric)
    data.categorical = overrides.get("categorical", data.categorical)
    result = assess(data, FAST, seed=0)
    found = by_id(result)
    assert expected in found
    column = overrides.get("time_column") or expected.partition(":")[2]
    assert repr(column) in found[expected].title
    if expected.startswith(("listed_twice", "infinite_values")):
        assert found[expected].severity == "block"
    if not expected.startswith("listed_twice"):  # the schema block stops the other checks
        assert result.honest_estimate is not None
    if case == "time_split_with_empty_dates":
        assert "time folds" in result.honest_estimate["how"]


def test_new_leakage_and_duplicate_keys_are_validated_with_their_key_path():
    raw = compose_config(ROOT / "conf")
    raw["assess"]["leakage"].update(max_rounds=3, culprit_candidates=4, time_pairs=False)
    raw["assess"]["duplicates"]["chance_level"] = 0.01
    assert validate(raw).assess.leakage.max_rounds == 3  # known keys, in range
    raw["assess"]["leakage"].update(max_rounds=0, culprit_candidates="many")
    raw["assess"]["duplicates"]["chance_level"] = 0.7
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    message = str(caught.value)
    assert "unknown key" not in message
    assert "assess.leakage.max_rounds" in message
    assert "assess.leakage.culprit_candidates" in message
    assert "assess.duplicates.chance_level" in message


def test_stage_writes_the_honest_estimate_for_the_deploy_gate(tmp_path, monkeypatch):
    from valuegate.config import write_params
    from valuegate.data import load_raw, prepare
    from valuegate.stages import assess as stage

    raw = compose_config(ROOT / "conf")
    write_params(raw, tmp_path / "params.yaml")
    config = validate(raw)
    splits, schema = prepare(load_raw(config.data, ROOT), config.data, config.seed, "x")
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    for name, part in splits.items():
        part.to_parquet(prepared / f"{name}.parquet", index=False)
    (prepared / "schema.json").write_text(json.dumps(schema.to_dict()))
    monkeypatch.chdir(tmp_path)
    stage.main([])
    record = json.loads((tmp_path / "reports" / "assessment.json").read_text())
    metrics = json.loads((tmp_path / "metrics" / "assess.json").read_text())
    honest = record["honest_estimate"]
    assert honest["metric"] == "roc_auc" and 0.6 < honest["value"] < 0.9
    assert honest["features"] == [*schema.numeric, *schema.categorical]
    assert metrics["honest_estimate"] == honest["value"]
    assert "Honest estimate" in (tmp_path / "reports" / "assessment.html").read_text()


def test_distinct_ids_with_identical_profiles_within_a_split_are_noted_not_dropped():
    """Distinct customers sharing one coded profile inside a split are not copies: an info
    finding, and drop_duplicates keeps them; rows repeating the id too are copies."""
    df = identical_profiles(4000, 2)
    data = table_data(df, "churn", "yes", id_column="customer_id")
    config = AssessConfig(n_folds=3, remedies={"drop_duplicates": True})
    result = assess(data, config, seed=0)
    within = by_id(result)["duplicates:within_split"]
    assert within.severity == "info"
    assert within.evidence["distinct_ids"] > 100  # 1% of rows warned before
    assert "distinct cases with identical feature vectors" in within.title
    assert f"rows ({within.evidence['distinct_ids'] / 4000:.1%}) share the" in within.title
    assert result.figures["duplicate_rows"] == 0
    assert all(len(r) == 0 for r in result.dropped_rows.values())

    copied = pd.concat([df, df.iloc[[5, 6, 7]]], ignore_index=True)  # same ids: copies
    copied = copied.iloc[np.r_[0:2000, 4000:4003, 2000:4000]].reset_index(drop=True)
    result = assess(table_data(copied, "churn", "yes", id_column="customer_id"), config, seed=0)
    within = by_id(result)["duplicates:within_split"]
    assert within.evidence["repeats"] == {"train": 3, "valid": 0, "test": 0}
    assert result.figures["duplicate_rows"] == 3
    assert "'customer_id' included" in within.title and "distinct cases" in within.title
    assert sorted(result.dropped_rows["train"].tolist()) == [2000, 2001, 2002]
