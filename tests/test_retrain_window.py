"""The retrain window (retrain.window, retrain/window.py): which periods a run learns from
and where its splits fall; pure functions on small frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.retrain_tables import by_period, data_config
from valuegate.config.loading import compose_config, validate
from valuegate.config.schema import RetrainWindow
from valuegate.data import prepare
from valuegate.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


DATA = data_config()


def _years(split: pd.DataFrame) -> dict[int, int]:
    return {int(k): int(v) for k, v in split["year"].value_counts().sort_index().items()}


def test_expanding_window_drops_later_periods_and_holds_out_the_newest_rows():
    df = by_period({2015: 400, 2016: 300, 2017: 200})
    splits, schema = prepare(df, DATA, 42, "sha", RetrainWindow(until=2016))
    # What was known in 2016: nothing of 2017.
    assert all(2017 not in _years(s) for s in splits.values())
    # Test: the last half of 2016 in file order (ids 550..699).
    assert splits["test"]["id"].tolist() == list(range(550, 700))
    # The rest (400 + 150) in time order at data.split's train:valid ratio 0.6:0.2.
    assert len(splits["train"]) == round(0.75 * 550)
    assert splits["train"]["id"].tolist() == list(range(0, 412))
    assert splits["valid"]["id"].tolist() == list(range(412, 550))
    assert schema.window["until"] == 2016
    assert schema.window["rows_per_period"] == {"2015": 400, "2016": 300}
    assert schema.window["dropped_after_until"] == 200
    assert "window" in schema.to_dict()


def test_sliding_and_weighted_rules():
    df = by_period({2014: 500, 2015: 400, 2016: 300, 2017: 200})
    sliding, schema = prepare(df, DATA, 42, "sha", RetrainWindow(until=2016, rule="sliding"))
    seen = {y for s in sliding.values() for y in _years(s)}
    assert seen == {2015, 2016}  # the newest 2 periods <= 2016
    assert schema.window["rows_per_period"] == {"2015": 400, "2016": 300}

    weighted, schema = prepare(
        df, DATA, 42, "sha", RetrainWindow(until=2016, rule="weighted", decay=0.5)
    )
    # A period k older keeps decay**k of its rows: 2016 all, 2015 half, 2014 a quarter.
    assert schema.window["rows_per_period"] == {"2014": 125, "2015": 200, "2016": 300}
    rows = pd.concat(weighted.values())
    assert _years(rows) == {2014: 125, 2015: 200, 2016: 300}
    # Stratified: the thinned period keeps its share of "bad" (within a row).
    kept_2014 = rows[rows["year"] == 2014]
    share = (df[df["year"] == 2014]["y"] == "bad").mean()
    assert abs((kept_2014["y"] == "bad").sum() - share * 125) <= 1
    # Seeded: the same rows on a rerun, other rows with another seed.
    again, _ = prepare(df, DATA, 42, "sha", RetrainWindow(until=2016, rule="weighted"))
    other, _ = prepare(df, DATA, 7, "sha", RetrainWindow(until=2016, rule="weighted"))
    assert again["train"]["id"].tolist() == weighted["train"]["id"].tolist()
    assert other["train"]["id"].tolist() != weighted["train"]["id"].tolist()


def test_no_window_is_todays_split_and_lineage():
    df = by_period({2015: 400, 2016: 300})
    plain, schema = prepare(df, DATA, 42, "sha")
    same, schema_null = prepare(df, DATA, 42, "sha", RetrainWindow(until=None))
    assert schema.to_dict() == schema_null.to_dict()
    assert "window" not in schema.to_dict()  # schema.json keeps its bytes
    for name in plain:
        pd.testing.assert_frame_equal(plain[name], same[name])
    _, windowed = prepare(df, DATA, 42, "sha", RetrainWindow(until=2016))
    assert windowed.lineage["data"] != schema.lineage["data"]  # every artifact's lineage
    _, other_rule = prepare(df, DATA, 42, "sha", RetrainWindow(until=2016, holdout=0.4))
    assert other_rule.lineage["data"] != windowed.lineage["data"]


def test_bad_windows_name_the_key_and_the_allowed_values():
    df = by_period({2015: 400, 2016: 300})
    with pytest.raises(DataError, match=r"retrain.window.until: 2019 .*Allowed: 2015, 2016"):
        prepare(df, DATA, 42, "sha", RetrainWindow(until=2019))
    # One period, a holdout of its rows: train and valid come from the rest; fine. But a
    # one-class split is refused with the key path.
    one_class = by_period({2015: 400, 2016: 300})
    one_class.loc[one_class["year"] == 2016, "y"] = "good"
    with pytest.raises(DataError, match=r"retrain.window \(until 2016.*valid split.*one class"):
        prepare(one_class, DATA, 42, "sha", RetrainWindow(until=2016))
    tiny = by_period({2015: 400, 2016: 1})
    with pytest.raises(DataError, match=r"retrain.window.holdout: 0.5 of the 1 rows"):
        prepare(tiny, DATA, 42, "sha", RetrainWindow(until=2016))


def test_config_needs_a_time_column_and_a_valid_rule():
    with pytest.raises(ConfigError, match=r"retrain.window.until is 2016 but data.time_column"):
        validate(compose_config(ROOT / "conf", ["retrain.window.until=2016"]))
    with pytest.raises(ConfigError, match=r"retrain.window.rule: 'slide'.*did you mean 'sliding'"):
        validate(compose_config(ROOT / "conf", ["retrain.window.rule=slide"]))
    with pytest.raises(ConfigError, match=r"retrain.cost.compute"):
        validate(compose_config(ROOT / "conf", ["retrain.cost.compute=-1"]))
    config = validate(
        compose_config(ROOT / "conf", ["+experiment=employment", "retrain.window.until=2016"])
    )
    assert config.retrain.window.until == 2016
