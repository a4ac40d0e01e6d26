"""The retrain window on messy tables (issue 16): the duplicates check under the window
(coarse coded profiles repeat by chance, copies still block), date-typed time columns, and
text months. Pure functions on a few hundred rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.retrain_tables import by_period, data_config
from valuegate.assess.duplicates import check_duplicates
from valuegate.assess.inputs import AssessData
from valuegate.assess.timeline import check_timeline
from valuegate.config.schema import AssessConfig, DataConfig, RetrainWindow
from valuegate.data import prepare
from valuegate.errors import DataError

ROOT = Path(__file__).resolve().parents[1]

CODES = [f"c{i}" for i in range(8)]
PEOPLE = DataConfig(
    name="people",
    path="unused.csv",
    task="binary",
    target="employed",
    positive_label=0,
    id_column="id",
    time_column="year",
    features={"numeric": ["age"], "categorical": ["sex", *CODES]},
    split={"method": "time", "train": 0.6, "valid": 0.2, "test": 0.2},
)


def people(per_year: int = 300, years=(2015, 2016, 2017), seed: int = 0) -> pd.DataFrame:
    """An ACS-like table: one row per distinct person (unique id). Children (a fifth)
    share every code ('none'), so two children of one age and sex are the same whole row;
    adults' eight codes of six levels each make their rows all but unique. The columns are
    strongly correlated through age, as census codes are."""
    rng = np.random.default_rng(seed)
    n = per_year * len(years)
    child = rng.random(n) < 0.2
    frame = pd.DataFrame(
        {
            "id": rng.permutation(10 * n)[:n],
            "year": np.repeat(years, per_year),
            "age": np.where(child, rng.integers(0, 16, n), rng.integers(16, 90, n)),
            "sex": rng.choice(["1", "2"], n),
        }
    )
    for code in CODES:
        frame[code] = np.where(child, "none", rng.choice([f"l{k}" for k in range(6)], n))
    frame["employed"] = np.where(child, 0, (rng.random(n) < 0.6).astype(int))
    return frame


def assessed(frame: pd.DataFrame, window: RetrainWindow | None) -> dict:
    splits, schema = prepare(frame, PEOPLE, 0, "sha", window)
    data = AssessData(
        splits=splits,
        task="binary",
        target="employed",
        positive_label=0,
        numeric=list(schema.numeric),
        categorical=list(schema.categorical),
        id_column="id",
        time_column="year",
        split_method="time",
    )
    return {f.id: f for f in check_duplicates(data, AssessConfig()).findings}


WINDOWS = [None, RetrainWindow(until=2016), RetrainWindow(until=2017, rule="sliding")]


@pytest.mark.parametrize("window", WINDOWS, ids=["default split", "until 2016", "sliding"])
def test_distinct_people_with_one_coded_profile_are_chance_under_the_window(window):
    # The employment example's case: distinct ids, whole rows alike (children of one age).
    # Before: the expected share came from the columns taken as independent (0.0%), so a
    # fifth of held-out rows repeating a training row blocked as "copies".
    cross = assessed(people(), window)["duplicates:cross_split"]
    assert cross.evidence["share_of_valid_and_test"] > 0.1
    assert cross.severity == "warn", cross.title
    assert not cross.evidence["copies"]
    assert cross.evidence["expected_from"] == "distinct ids"
    assert cross.evidence["expected_share"] > 0.1
    assert "under distinct ids" in cross.title and "not leakage" in cross.title


@pytest.mark.parametrize("window", WINDOWS, ids=["default split", "until 2016", "sliding"])
def test_rows_copied_from_train_into_test_still_block_under_the_window(window):
    frame = people()
    newest = 2016 if window is not None and window.until == 2016 else 2017
    oldest = 2016 if window is not None and window.rule == "sliding" else 2015
    # A join that copied 60 adult rows of the window's oldest period (train under every
    # split) into the newest period under new ids: the copies come last in file order, so
    # they fall in test.
    adults = frame[(frame["year"] == oldest) & (frame["age"] >= 16)]
    copies = adults.head(60).assign(year=newest, id=np.arange(10**6, 10**6 + 60))
    frame = pd.concat([frame[frame["year"] <= newest], copies], ignore_index=True)
    frame = frame.sort_values("year", kind="mergesort", ignore_index=True)
    found = assessed(frame, window)
    cross = found["duplicates:cross_split"]
    assert cross.severity == "block", cross.title
    assert "they are copies" in cross.title
    assert cross.evidence["rows_seen_earlier"]["test"] >= 60
    assert "duplicates:shared_ids" not in found  # new ids: only the whole rows give them away


def test_copies_inside_train_count_once_in_the_chance_share():
    # The same 40 people twice in train (same ids): copies, not more people of one profile;
    # they must not raise the share chance explains (and so hide copies across splits).
    frame = people()
    twice = pd.concat([frame.iloc[:40], frame], ignore_index=True)
    base = assessed(frame, RetrainWindow(until=2016))["duplicates:cross_split"]
    doubled = assessed(twice, RetrainWindow(until=2016))["duplicates:cross_split"]
    assert doubled.evidence["expected_share"] == pytest.approx(
        base.evidence["expected_share"], abs=0.01
    )


def months(dates) -> pd.DataFrame:
    """120 rows in each of `dates` (the time column `day`), labels half "bad"."""
    return by_period(dict.fromkeys(dates, 120), seed=1, time_column="day", bad=0.5)


MONTHS = data_config(time_column="day")


@pytest.mark.parametrize("tz", [None, "UTC"])
def test_until_written_as_a_date_matches_a_datetime_time_column(tz):
    # A Parquet file's timestamps: the periods print as 2017-02-01 00:00:00(+00:00); a user
    # writes retrain.window.until=2017-02-01. Before: "not a period ... Allowed: 2017-02-01
    # 00:00:00, ..." for the very period asked for.
    days = pd.to_datetime(["2017-01-01", "2017-02-01", "2017-03-01"]).tz_localize(tz)
    for until in ("2017-02-01", "2017-02-01T00:00:00Z"):
        splits, schema = prepare(months(days), MONTHS, 0, "sha", RetrainWindow(until=until))
        assert len(schema.window["rows_per_period"]) == 2  # January and February
        assert schema.window["dropped_after_until"] == 120  # March
        assert splits["test"]["day"].eq(days[1]).all()
    with pytest.raises(DataError, match=r"retrain.window.until: '2017-02-02' is not a period"):
        prepare(months(days), MONTHS, 0, "sha", RetrainWindow(until="2017-02-02"))


def test_a_text_month_column_windows_and_assesses_without_a_pandas_warning():
    # openintro's loans: issue_month is text such as "Mar-2018".
    frame = months(["Jan-2018", "Feb-2018", "Mar-2018"])
    splits, schema = prepare(frame, MONTHS, 0, "sha", RetrainWindow(until="Feb-2018"))
    assert list(schema.window["rows_per_period"]) == ["Jan-2018", "Feb-2018"]
    data = AssessData(splits, "binary", "y", "bad", ["x"], [], "id", "day", split_method="time")
    with warnings.catch_warnings():
        # Before: pandas' "Could not infer format" UserWarning on every assessment.
        warnings.simplefilter("error")
        check_timeline(data, AssessConfig())


def test_labels_appended_to_a_timestamp_column_belong_to_the_window_written_as_a_date():
    # `valuegate retrain --window 2017-02-01 --labels rows.parquet` on a timestamp column:
    # before, the new rows' 2017-02-01 00:00:00 was "not only the window '2017-02-01'".
    from valuegate.config.loading import compose_config, validate
    from valuegate.retrain.command import _check_period

    config = validate(compose_config(ROOT / "conf")).model_copy(update={"data": MONTHS})
    rows = months(pd.to_datetime(["2017-02-01"]))
    _check_period(config, rows, "2017-02-01")  # the same period: accepted
    with pytest.raises(DataError, match=r"--labels: column 'day' of the new rows holds"):
        _check_period(config, rows, "2017-03-01")


def test_a_window_of_hundreds_of_daily_periods_is_summarised_in_one_line():
    # modeldata's hotel_rates: arrival_date is a day, so a window holds ~240 periods;
    # before, the result paragraph (and the dry run) listed every one of them.
    from valuegate.retrain.command import periods_text, result_paragraph

    days = pd.date_range("2016-07-02", "2017-03-01").strftime("%Y-%m-%d")
    window = {
        "until": "2017-03-01",
        "rule": "expanding",
        "holdout": 0.5,
        "rows_per_period": {d: 30 for d in days},
        "test_period": "2017-03-01",
    }
    record = {"version": None, "champion_after": "v1", "reason": "no candidate passed"}
    text = result_paragraph(record, window, "EUR/month")
    assert text.startswith(
        f"Retrained on the expanding window up to 2017-03-01: {len(days)} periods, "
        f"{30 * len(days):,} rows: 2016-07-02 (30 rows), 2016-07-03 (30 rows), "
        "2016-07-04 (30 rows), ..., 2017-02-27 (30 rows)"
    )
    assert len(text) < 500
    few = {"2015": 68_785, "2016": 69_126}
    assert periods_text(few) == "2015 (68,785 rows), 2016 (69,126 rows)"
