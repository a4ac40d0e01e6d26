"""Loading, validating and splitting data: errors name the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from valuegate.data import load_raw, prepare, target_vector
from valuegate.errors import DataError


@pytest.fixture
def credit(compose):
    config = compose()
    return config, load_raw(config.data, ROOT)


def data_error(config, frame) -> str:
    with pytest.raises(DataError) as info:
        prepare(frame, config.data, config.seed, "")
    return str(info.value)


def test_example_splits_are_stratified_and_deterministic(credit):
    config, frame = credit
    splits, schema = prepare(frame, config.data, config.seed, "x")
    assert schema.rows == {"train": 600, "valid": 200, "test": 200}
    assert schema.positives == {"train": 180, "valid": 60, "test": 60}  # 30% bad in each
    assert len(schema.numeric) == 7 and len(schema.categorical) == 13
    again, _ = prepare(frame, config.data, config.seed, "x")
    for name in splits:
        pd.testing.assert_frame_equal(splits[name], again[name])
    other, _ = prepare(frame, config.data, config.seed + 1, "x")
    assert not splits["valid"].equals(other["valid"])


def test_missing_target_column(credit, compose):
    config, frame = credit
    message = data_error(config, frame.drop(columns=["creditability"]))
    assert "data.target: column 'creditability' is not in the data" in message


def test_target_typo_suggests_the_column(compose, credit):
    _, frame = credit
    config = compose("data.target=creditabilty")
    assert "did you mean 'creditability'?" in data_error(config, frame)


def test_positive_label_absent(compose, credit):
    _, frame = credit
    message = data_error(compose("data.positive_label=Bad"), frame)
    assert "data.positive_label: 'Bad' does not occur in column 'creditability'" in message
    assert "did you mean 'bad'?" in message


def test_empty_dataset(credit):
    config, frame = credit
    assert "holds no rows" in data_error(config, frame.iloc[:0])


def test_one_class_dataset(credit):
    config, frame = credit
    good = frame[frame["creditability"] == "good"]
    assert "does not occur" in data_error(config, good)  # 'bad' is absent
    config_good, _ = credit
    mostly = pd.concat([good, frame[frame["creditability"] == "bad"].head(3)])
    assert "each split needs at least" in data_error(config_good, mostly)


def test_declared_feature_absent(compose, credit):
    _, frame = credit
    config = compose("data.features.drop=[telephon]")
    assert "data.features.drop: column 'telephon'" in data_error(config, frame)


def test_numeric_feature_with_text(compose, credit):
    _, frame = credit
    config = compose("data.features.numeric=[purpose]")
    assert "data.features.numeric: column 'purpose'" in data_error(config, frame)


def test_missing_amounts_name_the_rows(credit):
    config, frame = credit
    broken = frame.copy()
    broken.loc[[3, 7], "credit_amount"] = np.nan
    message = data_error(config, broken)
    assert "data.amount_column" in message and "[3, 7]" in message


def test_regression_target_and_random_split(compose):
    config = compose("+experiment=diabetes")
    frame = load_raw(config.data, ROOT)
    splits, schema = prepare(frame, config.data, config.seed, "")
    assert sum(schema.rows.values()) == 442 and schema.positives is None
    assert target_vector(splits["train"], config.data).dtype == float


def test_time_split_keeps_order(compose, credit):
    _, frame = credit
    frame = frame.assign(applied=np.arange(len(frame))[::-1])
    config = compose("data.time_column=applied", "data.split.method=time")
    splits, _ = prepare(frame, config.data, config.seed, "")
    assert splits["train"]["applied"].max() < splits["valid"]["applied"].min()
    assert splits["valid"]["applied"].max() < splits["test"]["applied"].min()
    assert "applied" not in _.features


def test_hist_gradient_boosting_trains_on_a_10000_level_categorical():
    """Native categorical splits take at most 255 levels: rarer levels share one code."""
    import numpy as np
    import pandas as pd

    from valuegate.config.schema import ModelSpec
    from valuegate.models import build_pipeline, predict_scores

    rng = np.random.default_rng(0)
    rows = 20_000
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "code": [f"c{i}" for i in rng.integers(0, 10_000, rows)],
        }
    )
    frame.loc[::50, "code"] = np.nan
    y = (frame["x"] + rng.normal(size=rows) > 0).astype(int).to_numpy()
    spec = ModelSpec(estimator="hist_gradient_boosting", params={"max_iter": 5})
    pipeline = build_pipeline("model.hgb", spec, "binary", ["x"], ["code"], 0)
    pipeline.fit(frame, y)
    encoder = pipeline.named_steps["preprocess"].named_transformers_["categorical"]
    assert len(encoder.categories_[0]) > 255  # every level seen ...
    codes = encoder.transform(frame[["code"]])
    assert np.nanmax(codes) <= 254  # ... encoded into at most 255 levels
    unseen = pd.DataFrame({"x": [0.0], "code": ["never-seen"]})
    assert np.isfinite(predict_scores(pipeline, unseen, "binary")).all()
