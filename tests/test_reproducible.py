"""Reproducible, readable outputs: the same inputs give the same bytes (model files,
records), and DVC metrics hold numbers only.

The end-to-end check (a forced rerun of every stage over a committed run leaves git clean
and dvc.lock unchanged) is in tests/test_deploy_pipeline.py: it needs the registry state
that test's runs leave (the model already held, as in a clone), so it shares their project
instead of rerunning the package stage and its dependents for a copy of its own."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from valuegate.artifacts import ZIP_DATE, load_pipeline, save_pipeline
from valuegate.bundle import created_time
from valuegate.errors import ConfigError
from valuegate.models import predict_scores
from valuegate.stages.common import metrics_view, write_record


def _data(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    y = (x["a"] + 0.5 * x["b"] + rng.normal(scale=0.5, size=n) > 0).astype(int).to_numpy()
    return x, y


@pytest.mark.parametrize(
    "estimator",
    [
        # tree nodes are a structured array with padding bytes numpy leaves uninitialised
        lambda: RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0, n_jobs=2),
        lambda: LogisticRegression(),
    ],
)
def test_the_same_fit_saves_the_same_bytes(tmp_path: Path, estimator):
    """skops names objects by memory address and dates zip entries now: two fits of the
    same model (other objects, other addresses), saved apart, must still be one file."""
    x, y = _data()
    first = make_pipeline(StandardScaler(), estimator()).fit(x, y)
    second = make_pipeline(StandardScaler(), estimator()).fit(x, y)
    hashes = [
        save_pipeline(first, tmp_path / "one.skops"),
        save_pipeline(second, tmp_path / "two.skops"),
    ]
    assert hashes[0] == hashes[1]
    assert (tmp_path / "one.skops").read_bytes() == (tmp_path / "two.skops").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.skops") as archive:
        assert {info.date_time for info in archive.infolist()} == {ZIP_DATE}
    # and it is still the same model
    loaded = load_pipeline(tmp_path / "one.skops")
    np.testing.assert_array_equal(
        predict_scores(loaded, x, "binary"), predict_scores(first, x, "binary")
    )


def test_a_threaded_forest_scores_the_same_bits_on_every_call():
    """A forest with n_jobs=2 adds its trees in whatever order its threads finish: its own
    predict_proba differs in the last bit from call to call (and predictions.parquet's
    hash in dvc.lock from run to run). predict_scores must not."""
    x, y = _data(2000)
    forest = RandomForestClassifier(n_estimators=50, min_samples_leaf=3, n_jobs=2, random_state=0)
    pipeline = make_pipeline(StandardScaler(), forest).fit(x, y)
    first = predict_scores(pipeline, x, "binary")
    for _ in range(10):
        np.testing.assert_array_equal(predict_scores(pipeline, x, "binary"), first)
    np.testing.assert_allclose(first, pipeline.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
    assert pipeline[-1].n_jobs == 2  # the fitted model is not changed


def test_metrics_hold_numbers_and_the_report_the_sentences(tmp_path: Path):
    record = {
        "tuning_allowed": False,
        "best_baseline": "linear",  # a name: report only
        "baseline_pool": ["dummy", "linear"],  # a list: report only
        "rows": np.int64(200),
        "candidates": {
            "xgboost": {
                "observed_uplift": -45000.0,
                "ci_lower": -96000.5,
                "ci_upper": 30000.000000000004,  # float noise: 30000 once rounded
                "prob_positive": 0.088,
                "passed": np.bool_(False),
                "reason": "xgboost does not beat linear by enough",
                "missing": float("nan"),
            },
            "empty": {"reason": "only words"},
        },
        "lineage": {"data": "5c39b9b73582ef9a"},
    }
    assert metrics_view(record) == {
        "tuning_allowed": False,
        "rows": 200,
        "candidates": {
            "xgboost": {
                "observed_uplift": -45000,  # whole money as an int: 45000, not 4.5e+04
                "ci_lower": -96000.5,
                "ci_upper": 30000,
                "prob_positive": 0.088,
                "passed": False,
            }
        },
    }
    view = metrics_view(record)["candidates"]["xgboost"]
    assert type(view["observed_uplift"]) is int and type(view["ci_upper"]) is int
    write_record(tmp_path / "reports" / "gate.json", tmp_path / "metrics" / "gate.json", record)
    full = json.loads((tmp_path / "reports" / "gate.json").read_text())
    assert full["candidates"]["xgboost"]["reason"] == "xgboost does not beat linear by enough"
    numbers = (tmp_path / "metrics" / "gate.json").read_text()
    assert "linear" not in numbers
    assert '"observed_uplift": -45000,' in numbers and '"ci_upper": 30000,' in numbers


def test_a_bundle_is_dated_by_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert created_time() == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match=r"SOURCE_DATE_EPOCH='yesterday' is not a whole number"):
        created_time()
