"""Which model goes forward: the most valuable of the baselines and the models allowed
forward (tuned, else untuned candidates), on the validation split."""

from __future__ import annotations

import numpy as np
import pytest

from valuegate.business import value_model
from valuegate.evaluation import evaluate_models

ROLES = {"dummy": "baseline", "linear": "baseline", "xgboost": "candidate"}


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    sharp = np.clip(y * 0.8 + rng.normal(0.1, 0.05, y.size), 0, 1)
    blurred = np.clip(y * 0.3 + rng.normal(0.35, 0.2, y.size), 0, 1)
    return y, sharp, blurred


def run(compose, roles, predictions, y):
    config = compose("data.amount_column=null")
    summary, _ = evaluate_models(config, value_model(config), roles, y, predictions)
    return summary


def test_a_baseline_that_earns_more_than_every_candidate_goes_forward(compose, labelled):
    y, sharp, blurred = labelled
    predictions = {"dummy": np.full(y.size, 0.3), "linear": sharp, "xgboost": blurred}
    summary = run(compose, ROLES, predictions, y)
    models = summary["models"]
    assert models["linear"]["value_per_period"] > models["xgboost"]["value_per_period"]
    assert summary["best_candidate"] == "xgboost"
    assert summary["final_model"] == "linear"
    assert summary["final_reason"].startswith("linear (baseline) goes forward")
    assert "xgboost" in summary["final_reason"]


def test_a_candidate_that_earns_more_goes_forward(compose, labelled):
    y, sharp, blurred = labelled
    predictions = {"dummy": np.full(y.size, 0.3), "linear": blurred, "xgboost": sharp}
    summary = run(compose, ROLES, predictions, y)
    assert summary["final_model"] == "xgboost"
    assert summary["final_reason"].startswith("xgboost (candidate) goes forward")


def test_tuned_models_replace_untuned_candidates_and_a_tie_goes_to_the_baseline(compose, labelled):
    y, sharp, blurred = labelled
    roles = {**ROLES, "xgboost_tuned": "tuned"}
    # The untuned candidate is the best, but once tuning ran only tuned models go forward.
    predictions = {"dummy": np.full(y.size, 0.3), "linear": blurred, "xgboost": sharp}
    summary = run(compose, roles, {**predictions, "xgboost_tuned": blurred.copy()}, y)
    assert summary["final_model"] == "linear"  # tuned == linear in value: the baseline wins
    assert "as much as (a tie goes to the simpler model)" in summary["final_reason"]
    summary = run(compose, roles, {**predictions, "xgboost_tuned": sharp.copy()}, y)
    assert summary["final_model"] == "xgboost_tuned"
