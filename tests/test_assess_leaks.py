"""Leaks in combination, the iterated leak remedy, the honest estimate, duplicates that are
distinct rows, and bad inputs the assessment must survive (issue 11 items 1, 6, 7, 8)."""

from __future__ import annotations

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


# --- Redundant leaks and the leak's weaker copies (issue 11, item 1: what shipped on the
# holdout bench: a lending table's balance + principal paid, a flights table's air time) ---


def late_pair(n: int, seed: int, legit_pair: bool = False) -> pd.DataFrame:
    """Four honest features of a risk `u` (each ROC AUC ~0.8 alone, ~0.9 together) and two
    post-outcome recordings of one thing (days late in total and at the last payment, for
    60% of rows): each alone under the 0.95 that blocks, a quick model on everything
    above it, and each copy stands in for the other. With `legit_pair`, two close
    measurements of one strong, legitimate signal are added (h5, h6)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=n)
    df = pd.DataFrame({f"h{i}": u + rng.normal(0, 1.0, n) for i in range(1, 5)})
    if legit_pair:
        df["h5"] = u + rng.normal(0, 0.8, n)
        df["h6"] = df["h5"] + rng.normal(0, 0.1, n)
    df["region"] = rng.choice(["n", "s", "e", "w"], n).astype(object)
    default = u > 0.5
    # Recorded after the outcome, and only for the loans that reached their first due
    # date (60%): exact where present, missing elsewhere.
    late = np.where(default, 40 + rng.exponential(20, n), rng.exponential(3, n))
    late[rng.random(n) < 0.4] = np.nan
    df["days_late_total"] = np.round(late, 1)
    df["days_late_last"] = np.round(0.8 * late + rng.normal(0, 1, n), 1)
    df["default"] = np.where(default, "yes", "no").astype(object)
    return df


LATE = ["days_late_last", "days_late_total"]


def test_a_redundant_pair_of_leaky_columns_is_blocked_as_one_group_and_dropped():
    """(a) Each copy alone passes the drop-column test (the other carries the leak); the
    pair is removed together and blocks as one finding naming both; the remedy drops both
    and the honest estimate is the leak-free one."""
    data = table_data(late_pair(1500, 0), "default", "yes")
    config = AssessConfig(
        n_folds=3, leakage={"culprit_candidates": 4}, remedies={"drop_leaky_columns": True}
    )
    result = assess(data, config, seed=0)
    blocks = [f for f in result.findings if f.severity == "block"]
    assert len(blocks) == 1  # one finding for the pair, nothing else
    group = blocks[0]
    assert group.kind == "combined_leakage" and sorted(group.subject.split("+")) == LATE
    assert group.severity == "block" and group.status == "remedied"
    assert sorted(group.columns) == LATE
    assert "stand in for each other" in group.title
    first = result.figures["leakage_rounds"][0]
    assert first["auc"] >= 0.95
    # a copy the permutation ranks high hardly matters when removed: the other stands in
    assert all(first["full"] - first["without"][c] < 0.005 for c in LATE if c in first["without"])
    assert first[f"without_{first['culprit']}"] < 0.93  # together they carry the leak
    assert sorted(result.dropped_columns) == LATE
    assert not set(LATE) & set(result.honest_estimate["features"])
    assert result.honest_estimate["value"] < 0.93
    assert not result.blocked
    assert not {"h1", "h2", "h3", "h4"} & set(result.dropped_columns)


def test_two_close_measurements_of_a_legitimate_signal_are_not_blocked():
    """(c) Two strongly correlated, strongly predictive honest features next to the leaky
    pair: they are checked as the leak's possible stand-ins but predict as much alone as
    they add to the model, so they stay."""
    df = late_pair(1500, 0, legit_pair=True)
    assert df["h5"].corr(df["h6"]) > 0.95
    data = table_data(df, "default", "yes")
    config = AssessConfig(
        n_folds=3, leakage={"culprit_candidates": 4}, remedies={"drop_leaky_columns": True}
    )
    result = assess(data, config, seed=0)
    assert sorted(result.dropped_columns) == LATE
    blocked = {c for f in result.findings if f.severity == "block" for c in f.columns}
    assert blocked == set(LATE)
    # and without the leak, nothing blocks or is dropped: correlated is not leaky
    clean = assess(table_data(df.drop(columns=LATE), "default", "yes"), config, seed=0)
    assert not clean.blocked and clean.dropped_columns == []
    assert not any(f.kind == "combined_leakage" for f in clean.findings)


def lending(n: int, seed: int) -> pd.DataFrame:
    """A lending table (target `risk`: the grade, from which the rate is set) whose
    repayment columns, known only after the loan is made, give the rate away with the
    amount: the interest paid strongly, the installment and total paid (with the term and
    the months since issue) more weakly, behind it."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=n)
    rate = 0.11 + 0.035 * u + rng.normal(0, 0.004, n)
    amount = np.round(np.exp(rng.normal(np.log(12000), 0.6, n)), -2)
    term = rng.choice([36, 60], n, p=[0.7, 0.3])
    month = rng.choice(["Jan", "Feb", "Mar"], n)
    k = np.select([month == "Jan", month == "Feb"], [9, 8], 7).astype(float)
    i = rate / 12
    installment = amount * i / (1 - (1 + i) ** -term)
    grow = (1 + i) ** k
    balance = amount * grow - installment * (grow - 1) / i
    paid_total = installment * k
    return pd.DataFrame(
        {
            "income": np.round(np.exp(10.8 - 0.25 * u + rng.normal(0, 0.5, n)), -2),
            "debt_to_income": np.clip(18 + 5 * u + rng.normal(0, 8, n), 0, None),
            "inquiries": rng.poisson(np.exp(0.2 + 0.35 * u)).astype(float),
            "credit_lines": rng.poisson(20, n).astype(float),
            "purpose": rng.choice(["car", "home", "debt", "other"], n).astype(object),
            "loan_amount": amount,
            "term": term.astype(float),
            "issue_month": month.astype(object),
            "installment": np.round(installment, 2),
            "balance": np.round(balance, 2),
            "paid_total": np.round(paid_total, 2),
            "paid_principal": np.round(amount - balance, 2),
            "paid_interest": np.round(paid_total - (amount - balance), 2),
            "risk": np.where(u > 0.45, "high", "low").astype(object),
        }
    )


@pytest.mark.slow  # ~20 s: ~120 quick-model fits on 1,200 rows (rounds and stand-ins)
def test_a_weaker_leak_behind_a_stronger_one_is_found_once_the_stronger_is_set_aside():
    """(b) The interest paid gives the rate away (round 1, at the block level); with it set
    aside the quick model is under the block level, yet the installment and the total paid
    still carry the rate: they are found as its stand-ins in the next rounds, the amount
    (the decision's own money) and the honest features stay, and the honest estimate is
    what the columns known at application time reach."""
    data = table_data(lending(2000, 0), "risk", "high", amount_column="loan_amount")
    config = AssessConfig(n_folds=3, remedies={"drop_leaky_columns": True})
    result = assess(data, config, seed=0)
    rounds = result.figures["leakage_rounds"]
    assert rounds[0]["culprit"] == "paid_interest" and rounds[0]["auc"] >= 0.95
    assert rounds[1]["auc"] < 0.95  # what stopped the rounds before
    later = [r["culprit"] for r in rounds[2:] if r.get("stand_ins")]
    assert {"installment", "paid_total"} <= {c for r in later for c in r.split("+")}
    found = by_id(result)
    assert found["combined_leakage:installment"].severity == "block"
    assert (
        "stands in for the leak of 'paid_interest'" in found["combined_leakage:installment"].title
    )
    assert {"paid_interest", "installment", "paid_total"} <= set(result.dropped_columns)
    assert not {"loan_amount", "income", "debt_to_income", "inquiries", "term"} & set(
        result.dropped_columns
    )
    honest_features = [
        c
        for c in data.features
        if c
        in (
            "income",
            "debt_to_income",
            "inquiries",
            "credit_lines",
            "purpose",
            "loan_amount",
            "term",
            "issue_month",
        )
    ]
    from valuegate.assess.combined import QuickModel

    quick = QuickModel.build(data, np.arange(len(data.splits["train"])), 3, 0)
    application_time = quick.evaluate(honest_features)
    assert result.honest_estimate["value"] < application_time + 0.02


def cancelled_flights(n: int, seed: int) -> pd.DataFrame:
    """A delay `risk` known at departure (dep_delay, and a second honest signal), 5% of
    flights cancelled or diverted (always 'late'). The arrival delay (the leak) and the air
    time are missing on exactly those rows; the air time is otherwise noise around the
    distance. The departure delay is missing for the cancellations only (3%): a legitimate
    gap that is not the leak's."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    lost = rng.random(n) < 0.05
    cancelled = lost & (rng.random(n) < 0.6)
    late = lost | (risk > 0.8)
    df = pd.DataFrame(
        {
            "dep_delay": np.where(cancelled, np.nan, risk * 10 + rng.normal(0, 8, n)),
            "weather": risk + rng.normal(0, 1.5, n),
            "distance": rng.uniform(200, 2000, n).round(),
        }
    )
    df["air_time"] = np.where(lost, np.nan, df["distance"] / 8 + rng.normal(0, 5, n)).round()
    df["arr_delay"] = np.where(lost, np.nan, np.where(late, 30, 0) + rng.normal(0, 5, n))
    df["status"] = np.where(late, "late", "on_time").astype(object)
    return df


def test_a_column_missing_where_a_blocked_leak_is_missing_is_blocked_with_it():
    """The air time tells the outcome only through its gaps, which are the arrival delay's
    (cancelled or diverted flights): once the delay blocks, the air time is blocked as its
    missing twin and dropped by the remedy; the departure delay, missing for cancellations
    only, is not."""
    data = table_data(cancelled_flights(2000, 0), "status", "late")
    config = AssessConfig(n_folds=3, remedies={"drop_leaky_columns": True})
    result = assess(data, config, seed=0)
    found = by_id(result)
    assert found["target_leakage:arr_delay"].severity == "block"
    twin = found["combined_leakage:air_time"]
    assert twin.severity == "block" and twin.evidence["missing_like"] == "arr_delay"
    assert "missing on the same rows as 'arr_delay'" in twin.title
    assert {"arr_delay", "air_time"} <= set(result.dropped_columns)
    assert "dep_delay" not in result.dropped_columns
    assert "combined_leakage:dep_delay" not in found
    assert not result.blocked


def test_a_column_that_gives_a_blocked_leak_back_with_the_amount_is_blocked_with_it():
    """The balance left on a loan is the amount minus the principal paid: once the
    principal paid blocks, the balance and the amount give it back on a straight line.
    The balance is the leak again; the income (correlated with the amount) and the
    installment (the amount over the term, known at application) are not."""
    from valuegate.assess.combined import QuickModel
    from valuegate.assess.leakage import _linear_twins

    rng = np.random.default_rng(0)
    n = 900
    risk = rng.normal(size=n)
    amount = rng.uniform(1_000, 20_000, n).round()
    term = rng.choice([36, 60], n)
    paid_share = np.clip(np.where(risk > 0.5, 0.3, 0.6) + rng.normal(0, 0.15, n), 0, 1)
    df = pd.DataFrame(
        {
            "amount": amount,
            "income": amount * 3 + rng.normal(0, 8_000, n),
            "installment": amount / term,
            "paid_principal": (amount * paid_share).round(2),
            "risk_score": risk + rng.normal(0, 1, n),
            "default": np.where(risk > 0.5, "yes", "no").astype(object),
        }
    )
    df["balance"] = (df["amount"] - df["paid_principal"] + rng.normal(0, 20, n)).round(2)
    data = table_data(df, "default", "yes", amount_column="amount")
    quick = QuickModel.build(data, np.arange(len(data.splits["train"])), 3, 0)
    twins = _linear_twins(data, quick, {"paid_principal"})
    assert list(twins) == ["balance"]
    leak, fit = twins["balance"]
    assert leak == "paid_principal" and fit["r2"] > 0.99 and fit["r2_without"] < 0.8
    assert _linear_twins(data, quick, set()) == {}  # no leak blocked: nothing to give back
