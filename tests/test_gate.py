"""The metric gate: paired bootstrap, Bonferroni, decisions, and its false-pass rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from valuegate.business import BinaryValueModel, RegressionValueModel
from valuegate.config.schema import THRESHOLD_METRICS, parse_constraint
from valuegate.gate import decide, gate_candidates, paired_bootstrap_uplift

# Fraud-like: catching a positive is worth 100, a false alarm costs 20, a miss costs 200;
# 1,000 cases per month, so figures are EUR/month.
BINARY = BinaryValueModel(
    values={"tp": (100, 0), "fp": (-20, 0), "fn": (-200, 0), "tn": (0, 0)}, volume=1000
)
REGRESSION = RegressionValueModel(under=3, over=1, tolerance=0.5, volume=1000)


def binary_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and the latent signal (n,) every scoring process adds its noise to."""
    y = rng.binomial(1, 0.3, n)
    return y, 1.5 * y - 0.5


def noisy_scores(latent: np.ndarray, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """One draw of a scoring process: a probability-like score, shape (n,)."""
    return 1.0 / (1.0 + np.exp(-(latent + rng.normal(0.0, noise_sd, len(latent)))))


@pytest.fixture(scope="module")
def clear_win():
    rng = np.random.default_rng(7)
    y, latent = binary_data(3000, rng)
    candidate = noisy_scores(latent, 0.3, rng)
    baseline = noisy_scores(latent, 2.0, rng)
    uplifts = paired_bootstrap_uplift(BINARY, y, candidate, baseline, n_resamples=300, seed=1)
    observed = (
        BINARY.choose_threshold(y, candidate).value_per_period
        - BINARY.choose_threshold(y, baseline).value_per_period
    )
    return y, candidate, baseline, uplifts, observed


def test_a_clearly_better_candidate_passes_and_a_high_bar_stops_it(clear_win):
    _, _, _, uplifts, observed = clear_win
    assert uplifts.shape == (300,)
    win = decide("xgboost", "linear", uplifts, observed, 0.0, 0.95, 1, "EUR", "month")
    assert win.passed
    assert win.ci_lower > 0
    assert win.ci_lower <= observed <= win.ci_upper
    assert win.prob_positive == 1.0
    assert "xgboost" in win.reason and "linear" in win.reason
    assert win.reason.endswith("tuning allowed") and "not allowed" not in win.reason

    bar = win.ci_upper + 1.0
    stopped = decide("xgboost", "linear", uplifts, observed, bar, 0.95, 1, "EUR", "month")
    assert not stopped.passed
    assert "xgboost" in stopped.reason
    assert stopped.reason.endswith("tuning not allowed")
    assert f"{round(bar):,d} EUR/month that matters" in stopped.reason


def test_identical_predictions_give_exactly_zero_uplift_and_do_not_pass(clear_win):
    y, candidate, _, _, _ = clear_win
    uplifts = paired_bootstrap_uplift(BINARY, y, candidate, candidate.copy(), n_resamples=50)
    assert np.all(uplifts == 0.0)
    decision = decide("twin", "linear", uplifts, 0.0, 0.0, 0.95, 1, "EUR", "month")
    assert not decision.passed  # a lower bound of exactly 0 does not beat the baseline
    assert decision.reason.endswith("tuning not allowed")


def test_same_seed_same_uplifts_different_seed_different(clear_win):
    y, candidate, baseline, _, _ = clear_win
    first = paired_bootstrap_uplift(BINARY, y, candidate, baseline, n_resamples=40, seed=3)
    again = paired_bootstrap_uplift(BINARY, y, candidate, baseline, n_resamples=40, seed=3)
    other = paired_bootstrap_uplift(BINARY, y, candidate, baseline, n_resamples=40, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_bonferroni_widens_the_interval(clear_win):
    _, _, _, uplifts, observed = clear_win
    one = decide("xgboost", "linear", uplifts, observed, 0.0, 0.9, 1, "EUR", "month")
    three = decide("xgboost", "linear", uplifts, observed, 0.0, 0.9, 3, "EUR", "month")
    assert three.ci_lower < one.ci_lower
    assert three.ci_upper > one.ci_upper
    assert one.adjusted_confidence == pytest.approx(0.9)
    assert three.adjusted_confidence == pytest.approx(1 - 0.1 / 3)
    assert "Bonferroni-adjusted for 3 candidates" in three.reason
    assert "Bonferroni" not in one.reason
    assert "90% bounds" in three.reason  # the unadjusted confidence is what the user asked for


def test_reason_sentences_by_hand():
    win = decide("xgboost", "linear", np.full(100, 1240.4), 1240.4, 500, 0.95, 3, "EUR", "month")
    assert win.reason == (
        "xgboost beats linear by 1,240 EUR/month (95% bounds 1,240 to 1,240, Bonferroni-adjusted "
        "for 3 candidates), above the 500 EUR/month that matters: tuning allowed"
    )
    uplifts = np.linspace(-60_000, 15_000, 1001)
    loss = decide("xgboost", "linear", uplifts, -21_000.3, 5000, 0.9, 1, "EUR", "month")
    assert not loss.passed
    assert loss.ci_lower == pytest.approx(-52_500)  # the 10% quantile
    assert loss.ci_upper == pytest.approx(7_500)
    assert loss.reason == (
        "xgboost does not beat linear by enough: its uplift is -21,000 EUR/month (90% bounds "
        "-52,500 to 7,500), the lower bound is below the 5,000 EUR/month that matters: "
        "tuning not allowed"
    )
    record = json.loads(json.dumps(loss.to_dict()))
    assert record["n_resamples"] == 1001
    assert record["prob_positive"] == pytest.approx(200 / 1001)
    with pytest.raises(ValueError, match="confidence"):
        decide("a", "b", uplifts, 0.0, 0.0, 1.5, 1, "EUR", "month")


def test_fast_binary_path_matches_choose_threshold_per_resample():
    rng = np.random.default_rng(11)
    n = 250
    y = rng.integers(0, 2, n)
    candidate = rng.integers(0, 20, n) / 19.0  # many ties
    baseline = np.round(rng.random(n), 2)
    amount = rng.uniform(10, 1000, n)
    model = BinaryValueModel(
        values={"tp": (5, 0.01), "fp": (-1, 0), "fn": (-3, -0.02), "tn": (2, 0)}, volume=7
    )
    constraints = [parse_constraint("precision >= 0.55", THRESHOLD_METRICS)]
    uplifts = paired_bootstrap_uplift(
        model, y, candidate, baseline, amount, constraints, n_resamples=30, seed=5
    )
    draws = np.random.default_rng(5)
    expected = []
    for _ in range(30):
        idx = draws.integers(0, n, size=n)
        points = [
            model.choose_threshold(y[idx], s[idx], amount[idx], constraints)
            for s in (candidate, baseline)
        ]
        expected.append(points[0].value_per_period - points[1].value_per_period)
    np.testing.assert_allclose(uplifts, expected, rtol=1e-9, atol=1e-9)


CONFIDENCE = 0.9  # the simulations test the gate at 90%: 10% false passes allowed


def binomial_tolerance(n_datasets: int) -> float:
    """2.5 standard errors of a pass rate of 1 - CONFIDENCE measured on n_datasets."""
    return 2.5 * math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / n_datasets)


def test_false_pass_rate_at_zero_true_uplift_stays_within_the_confidence():
    """Neither model is truly better: both are independent draws of the same scoring process
    on the same rows. The gate must not let more than 1 - confidence of them through."""
    n_datasets, n_rows = 200, 300
    rng = np.random.default_rng(2024)
    passes = 0
    for i in range(n_datasets):
        y, latent = binary_data(n_rows, rng)
        a, b = noisy_scores(latent, 1.0, rng), noisy_scores(latent, 1.0, rng)
        uplifts = paired_bootstrap_uplift(BINARY, y, a, b, n_resamples=120, seed=i)
        observed = (
            BINARY.choose_threshold(y, a).value_per_period
            - BINARY.choose_threshold(y, b).value_per_period
        )
        decision = decide("a", "b", uplifts, observed, 0.0, CONFIDENCE, 1, "EUR", "month")
        passes += decision.passed
    rate = passes / n_datasets
    print(f"\nfalse-pass rate, one candidate, zero true uplift: {rate:.3f} ({n_datasets} datasets)")
    assert rate <= (1 - CONFIDENCE) + binomial_tolerance(n_datasets)


def test_false_pass_rate_of_the_best_of_three_equal_candidates():
    """Three candidates, all as good as the baseline: picking the best-looking one must not
    make a false pass likelier than 1 - confidence (Bonferroni, n_compared = 3)."""
    n_datasets, n_rows = 100, 300
    names = ("c1", "c2", "c3")
    roles = {"base": "baseline", **dict.fromkeys(names, "candidate")}
    rng = np.random.default_rng(99)
    best_passes = any_passes = 0
    for i in range(n_datasets):
        y, latent = binary_data(n_rows, rng)
        predictions = {name: noisy_scores(latent, 1.0, rng) for name in roles}
        gate = gate_candidates(
            BINARY, y, predictions, roles, None, (), 0.0, CONFIDENCE, 100, 10 * i, "EUR", "month"
        )
        assert gate["n_compared"] == 3
        decisions = gate["candidates"]
        best = max(names, key=lambda n: decisions[n]["observed_uplift"])
        best_passes += decisions[best]["passed"]
        any_passes += bool(gate["passed"])
    best_rate, any_rate = best_passes / n_datasets, any_passes / n_datasets
    print(
        f"\nfalse-pass rate, best of 3 equal candidates (Bonferroni): {best_rate:.3f}; "
        f"any of the 3: {any_rate:.3f} ({n_datasets} datasets)"
    )
    assert best_rate <= (1 - CONFIDENCE) + binomial_tolerance(n_datasets)


def test_regression_candidate_closer_to_the_truth_passes_and_is_best():
    rng = np.random.default_rng(3)
    n = 300
    y = rng.normal(50.0, 10.0, n)
    predictions = {
        "mean": np.full(n, y.mean()),
        "linear": y + rng.normal(0.0, 6.0, n),
        "good": y + rng.normal(0.0, 1.0, n),
        "same": y + rng.normal(0.0, 6.0, n),  # as good as the best baseline, no better
    }
    roles = {"mean": "baseline", "linear": "baseline", "good": "candidate", "same": "candidate"}
    gate = gate_candidates(
        REGRESSION, y, predictions, roles, None, (), 1000.0, 0.95, 80, 0, "EUR", "month", 21
    )
    assert gate["best_baseline"] == "linear"
    assert gate["n_compared"] == 2
    good = gate["candidates"]["good"]
    assert good["passed"] and good["ci_lower"] >= 1000.0
    assert good["observed_uplift"] > 0
    assert not gate["candidates"]["same"]["passed"]
    assert gate["passed"] == ["good"]
    assert gate["best_passing"] == "good"
    json.dumps(gate)  # plain, JSON-ready
    again = gate_candidates(
        REGRESSION, y, predictions, roles, None, (), 1000.0, 0.95, 80, 0, "EUR", "month", 21
    )
    assert again == gate


def test_best_baseline_prefers_one_that_meets_the_constraints():
    rng = np.random.default_rng(5)
    y, latent = binary_data(600, rng)
    predictions = {
        # ranks perfectly but is only ever allowed to flag nobody or everybody
        "coin": np.where(rng.random(600) < 0.5, 0.0, 1.0),
        "linear": noisy_scores(latent, 1.0, rng),
        "xgboost": noisy_scores(latent, 0.3, rng),
    }
    roles = {"coin": "baseline", "linear": "baseline", "xgboost": "candidate"}
    precise = [parse_constraint("precision >= 0.6", THRESHOLD_METRICS)]
    gate = gate_candidates(
        BINARY, y, predictions, roles, None, precise, 0.0, 0.95, 100, 0, "EUR", "month"
    )
    assert gate["best_baseline"] == "linear"
    assert gate["best_passing"] == "xgboost"
    with pytest.raises(ValueError, match="baseline"):
        gate_candidates(BINARY, y, {"xgboost": predictions["xgboost"]}, roles)


def test_a_candidate_that_cannot_meet_the_constraints_does_not_pass():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 400), 0, 1)
    baseline = np.full(400, 0.5)
    model = BinaryValueModel(
        values={"tp": (10, 0), "fp": (-1, 0), "fn": (-10, 0), "tn": (0, 0)}, volume=100
    )
    impossible = parse_constraint("precision >= 1.01", THRESHOLD_METRICS)
    record = gate_candidates(
        model,
        y,
        {"b": baseline, "c": good},
        {"b": "baseline", "c": "candidate"},
        constraints=[impossible],
        n_resamples=100,
    )
    assert record["candidates"]["c"]["passed"] is False
    assert "precision >= 1.01" in record["candidates"]["c"]["reason"]
    assert record["best_passing"] is None
