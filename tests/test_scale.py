"""Scale (issue 14): categoricals of bounded width, threads from one setting, a memory
guard that names the column, and `data.sample_rows`. Small tables, no stage runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from tests.synthetic import flights
from valuegate import resources
from valuegate.artifacts import load_pipeline, save_pipeline
from valuegate.bundle import Encoder, compile_encoder, final_xgboost
from valuegate.config.fingerprint import data_lineage
from valuegate.config.schema import ModelSpec, ResourcesConfig
from valuegate.data import prepare, target_vector
from valuegate.errors import BudgetError
from valuegate.models import build_estimator, build_pipeline, predict_scores

NUMERIC = ["sched_dep_time", "dep_time", "distance"]
CATEGORICAL = ["carrier", "tailnum", "origin", "dest"]  # tailnum: ~4,000 levels


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    frame = flights(3000, seed=1, with_delay=False)
    y = (frame.pop("status") == "late").to_numpy(dtype=int)
    X = frame[NUMERIC + CATEGORICAL].copy()  # noqa: N806
    X.loc[::37, "tailnum"] = np.nan
    X.loc[::41, "dep_time"] = np.nan
    return X, y


@pytest.fixture
def restore_threads():
    """apply_threads changes process-wide limits: put them back after the test."""
    yield
    limits = resources._applied["limits"]
    if limits is not None:
        limits.restore_original_limits()
    resources._applied.update(threads=None, limits=None)


def _spec(estimator: str, **categorical) -> ModelSpec:
    params = {"n_estimators": 20} if estimator in ("xgboost", "random_forest") else {}
    return ModelSpec(estimator=estimator, params=params, categorical=categorical)


def test_a_4000_level_column_gives_a_matrix_of_bounded_width(table):
    X, y = table  # noqa: N806
    assert X["tailnum"].nunique() > 2000
    linear = build_pipeline("baseline.linear", _spec("linear"), "binary", NUMERIC, CATEGORICAL, 0)
    linear.fit(X, y)
    encoded = linear[:-1].transform(X)
    # sparse for the linear model, and every categorical at most 64 columns wide
    assert sp.issparse(encoded)
    assert encoded.shape[1] <= len(NUMERIC) + 64 * len(CATEGORICAL)
    assert encoded.shape[1] < 200
    boosted = build_pipeline("model.xgboost", _spec("xgboost"), "binary", NUMERIC, CATEGORICAL, 0)
    boosted.fit(X, y)
    dense = boosted[:-1].transform(X)
    # xgboost reads absent sparse entries as missing: it stays dense, but bounded
    assert isinstance(dense, np.ndarray) and dense.shape[1] < 200


@pytest.mark.parametrize("encoding", ["onehot", "native"])
def test_the_serving_encoder_follows_the_pipeline(table, encoding):
    """The bundle's numpy hot path is read off the fitted pipeline (infrequent buckets,
    native codes) and scores exactly as it does, unseen and missing levels included."""
    X, y = table  # noqa: N806
    spec = _spec("xgboost", encoding=encoding, max_categories=20)
    pipeline = build_pipeline("model.xgboost", spec, "binary", NUMERIC, CATEGORICAL, 0)
    pipeline.fit(X, y)
    compiled = compile_encoder(pipeline)
    assert compiled is not None
    rows = X.head(200).copy()
    rows.loc[5:9, "tailnum"] = "N9999Z"  # unseen: the infrequent bucket / missing code
    rows.loc[10:12, "carrier"] = np.nan
    encoder, booster = Encoder(compiled), final_xgboost(pipeline).get_booster()
    expected = predict_scores(pipeline, rows, "binary")
    frame_scores = booster.inplace_predict(encoder.encode_frame(rows))
    record_scores = [
        booster.inplace_predict(encoder.encode_record(r))[0] for r in rows.to_dict("records")
    ]
    np.testing.assert_array_equal(frame_scores, expected)
    np.testing.assert_array_equal(record_scores, expected)


def test_target_encoding_is_one_column_per_feature_and_loads_safely(table, tmp_path):
    X, y = table  # noqa: N806
    spec = _spec("linear", encoding="target")
    pipeline = build_pipeline("baseline.linear", spec, "binary", NUMERIC, CATEGORICAL, 0)
    pipeline.fit(X, y)
    assert pipeline[:-1].transform(X).shape[1] == len(NUMERIC) + len(CATEGORICAL)
    save_pipeline(pipeline, tmp_path / "model.skops")  # its folds are trusted types
    again = load_pipeline(tmp_path / "model.skops")
    np.testing.assert_array_equal(
        predict_scores(again, X.head(50), "binary"), predict_scores(pipeline, X.head(50), "binary")
    )


def test_an_encoding_the_estimator_cannot_take_is_refused():
    with pytest.raises(ValidationError, match="'native' is not available for estimator 'linear'"):
        ModelSpec(estimator="linear", categorical={"encoding": "native"})
    with pytest.raises(ValidationError, match="max_categories"):
        ModelSpec(estimator="xgboost", categorical={"max_categories": 1})


def test_threads_reach_xgboost_scikit_learn_and_openmp(restore_threads):
    from threadpoolctl import threadpool_info

    assert resources.apply_threads(ResourcesConfig(threads=1)) == 1
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    for name in ("xgboost", "random_forest"):
        spec = ModelSpec(estimator=name, params={"n_jobs": 8} if name == "xgboost" else {})
        assert build_estimator(f"model.{name}", spec, "binary", 0).get_params()["n_jobs"] == 1
    # never more than the cores this process may run on
    cores = resources.available_cores()
    assert resources.apply_threads(ResourcesConfig(threads=cores + 7)) == cores
    assert resources.resolve_threads(None, workers=cores * 2) == 1


def test_the_memory_guard_names_the_column_and_the_fixes(table):
    X, _ = table  # noqa: N806
    unbucketed = _spec("xgboost", min_frequency=None, max_categories=None)
    budget = ResourcesConfig(max_memory_gb=0.01)
    with pytest.raises(BudgetError) as info:
        resources.guard_fit("model.xgboost", unbucketed, X, NUMERIC, CATEGORICAL, budget)
    message = str(info.value)
    assert "column 'tailnum'" in message
    assert "model.xgboost.categorical.max_categories" in message
    assert "data.sample_rows" in message and "resources.max_memory_gb" in message
    # the same rows bucketed (the default) fit where the unbucketed ones do not (the guard
    # adds what the process holds, so compare the fits alone: held=0)
    unlimited = resources.estimate_fit(X, NUMERIC, CATEGORICAL, "onehot", None, None, False, 0)
    bucketed = resources.estimate_fit(X, NUMERIC, CATEGORICAL, "onehot", 5, 64, False, 0)
    assert bucketed.widths["tailnum"] <= 64 < unlimited.widths["tailnum"]
    between = (bucketed.bytes + unlimited.bytes) / 2 / resources.GB
    assert resources.memory_problem("model.xgboost", unlimited, between) is not None
    assert resources.memory_problem("model.xgboost", bucketed, between) is None


def test_encoded_width_matches_the_fitted_encoder(table):
    X, y = table  # noqa: N806
    for categorical in ({}, {"min_frequency": 2, "max_categories": None}):
        spec = _spec("xgboost", **categorical)
        pipeline = build_pipeline("model.xgboost", spec, "binary", NUMERIC, CATEGORICAL, 0)
        width = pipeline[:-1].fit_transform(X, y).shape[1]
        estimate = resources.guard_fit(
            "model.xgboost", spec, X, NUMERIC, CATEGORICAL, ResourcesConfig()
        )
        assert estimate.width == width


def test_sample_rows_is_stratified_seeded_and_recorded(compose):
    config = compose("data.sample_rows=400")
    frame = flights(3000, seed=2, with_delay=False)
    data = config.data.model_copy(
        update={
            "path": "flights.csv",
            "target": "status",
            "positive_label": "late",
            "amount_column": None,
            "features": config.data.features.model_copy(update={"drop": ["date"]}),
        }
    )
    splits, schema = prepare(frame, data, config.seed, "x")
    assert sum(schema.rows.values()) == 400
    assert schema.sample == {
        "rows": 400,
        "of": 3000,
        "how": "stratified by the target",
        "seed": config.seed,
    }
    share = target_vector(frame, data).mean()
    kept = sum(schema.positives.values())
    assert abs(kept - 400 * share) <= 1  # the class shares of the whole file
    again, _ = prepare(frame, data, config.seed, "x")
    pd.testing.assert_frame_equal(splits["train"], again["train"])
    # recorded in every artifact: the data fingerprint every record's lineage carries
    whole = data.model_copy(update={"sample_rows": None})
    assert data_lineage(data, config.seed)["data"] != data_lineage(whole, config.seed)["data"]
    _, full = prepare(frame, whole, config.seed, "x")
    assert sum(full.rows.values()) == 3000 and full.sample == {}


def test_idle_openmp_threads_sleep_instead_of_spinning():
    """Set on import, before xgboost's or scikit-learn's OpenMP runtime loads (they read it
    once): spinning idle threads made fits on a busy machine 16x slower."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, valuegate; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE"


def test_a_forest_draws_at_most_max_samples_rows_per_tree_and_small_tables_fit_as_before(
    table,
):
    """`max_samples` bounds a tree's rows on a large table; at or below the bound the fit
    is exactly the one without it (scikit-learn alone would draw the bound WITH
    replacement from fewer rows: 20,000 draws from 3,000 rows)."""
    from valuegate.models import fit_pipeline

    X, y = table  # noqa: N806

    def forest(**params):
        spec = ModelSpec(
            estimator="random_forest", params={"n_estimators": 5, "n_jobs": 1, **params}
        )
        return build_pipeline("model.random_forest", spec, "binary", NUMERIC, CATEGORICAL, 0)

    unbounded = fit_pipeline(forest(), X, y)
    bounded = fit_pipeline(forest(max_samples=20_000), X, y)
    assert bounded[-1].max_samples is None  # 3,000 rows: the bound does not bind
    assert np.array_equal(
        predict_scores(bounded, X, "binary"), predict_scores(unbounded, X, "binary")
    )
    plain = forest(max_samples=20_000).fit(X, y)  # what scikit-learn alone does
    assert not np.array_equal(
        predict_scores(plain, X, "binary"), predict_scores(unbounded, X, "binary")
    )
    small = fit_pipeline(forest(max_samples=500), X, y)  # binds: 500 rows per tree
    assert small[-1].max_samples == 500
    assert all(len(rows) == 500 for rows in small[-1].estimators_samples_)


def test_auto_encoding_turns_native_for_xgboost_and_target_for_a_forest_on_a_large_split(
    table,
):
    """Above models.NATIVE_ABOVE_ROWS training rows, `auto` gives xgboost one column per
    categorical (native splits) instead of a one-hot block, and above
    models.TARGET_ABOVE_ROWS a random forest one target-encoded column per categorical;
    smaller tables (the example's 600 rows) and other estimators keep theirs; an explicit
    encoding is kept at any size."""
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    from valuegate.models import NATIVE_ABOVE_ROWS, TARGET_ABOVE_ROWS, categorical_encoding

    X, y = table  # noqa: N806
    xgb = ModelSpec(estimator="xgboost", params={"n_estimators": 5, "n_jobs": 1})
    large = NATIVE_ABOVE_ROWS["xgboost"] + 1
    assert categorical_encoding(xgb) == categorical_encoding(xgb, 600) == "onehot"
    assert categorical_encoding(xgb, large) == "native"
    forest = ModelSpec(estimator="random_forest", params={"n_estimators": 5, "n_jobs": 1})
    large_for_forest = TARGET_ABOVE_ROWS["random_forest"] + 1
    assert categorical_encoding(forest, 600) == "onehot"
    assert categorical_encoding(forest, TARGET_ABOVE_ROWS["random_forest"]) == "onehot"
    assert categorical_encoding(forest, large_for_forest) == "target"
    linear = ModelSpec(estimator="linear")
    assert categorical_encoding(linear, max(large, large_for_forest)) == "onehot"
    fitted = build_pipeline(
        "model.random_forest", forest, "binary", NUMERIC, CATEGORICAL, 0,
        train_rows=large_for_forest,
    ).fit(X, y)  # fmt: skip
    assert isinstance(fitted[0].named_transformers_["categorical"], TargetEncoder)
    assert fitted[0].transform(X).shape[1] == len(NUMERIC) + len(CATEGORICAL)
    chosen = xgb.model_copy(
        update={"categorical": xgb.categorical.model_copy(update={"encoding": "onehot"})}
    )
    assert categorical_encoding(chosen, large) == "onehot"

    def encoder(rows):
        pipeline = build_pipeline(
            "model.xgboost", xgb, "binary", NUMERIC, CATEGORICAL, 0, train_rows=rows
        )
        return pipeline.fit(X, y)

    native = encoder(large)  # fitted on 3,000 rows as a fold of a large split would be
    assert isinstance(native[0].named_transformers_["categorical"], OrdinalEncoder)
    assert native[0].transform(X).shape[1] == len(NUMERIC) + len(CATEGORICAL)
    assert isinstance(encoder(600)[0].named_transformers_["categorical"], OneHotEncoder)
