"""The metric gate: paired bootstrap, Bonferroni, decisions, and its false-pass rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from valuegate.business import BinaryValueModel, RegressionValueModel
from valuegate.config.schema import THRESHOLD_METRICS, parse_constraint
from valuegate.gate import bootstrap_at_points, case_values_at_points, decide, gate_candidates

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


def fixed_point_uplifts(y, candidate, baseline, n_resamples, seed=0, points=None):
    """Bootstrap uplifts (n_resamples,) of `candidate` over `baseline` at fixed thresholds
    (by default each one's best threshold on these rows), and the observed uplift."""
    if points is None:
        points = {
            "candidate": BINARY.choose_threshold(y, candidate).value,
            "baseline": BINARY.choose_threshold(y, baseline).value,
        }
    cases = case_values_at_points(BINARY, y, {"candidate": candidate, "baseline": baseline}, points)
    draws = bootstrap_at_points(cases, BINARY.volume, n_resamples, seed)
    observed = (cases["candidate"].mean() - cases["baseline"].mean()) * BINARY.volume
    return draws["candidate"] - draws["baseline"], float(observed)


@pytest.fixture(scope="module")
def clear_win():
    rng = np.random.default_rng(7)
    y, latent = binary_data(3000, rng)
    candidate = noisy_scores(latent, 0.3, rng)
    baseline = noisy_scores(latent, 2.0, rng)
    uplifts, observed = fixed_point_uplifts(y, candidate, baseline, n_resamples=300, seed=1)
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
    uplifts, _ = fixed_point_uplifts(y, candidate, candidate.copy(), n_resamples=50)
    assert np.all(uplifts == 0.0)
    decision = decide("twin", "linear", uplifts, 0.0, 0.0, 0.95, 1, "EUR", "month")
    assert not decision.passed  # a lower bound of exactly 0 does not beat the baseline
    assert decision.reason.endswith("tuning not allowed")


def test_same_seed_same_uplifts_different_seed_different(clear_win):
    y, candidate, baseline, _, _ = clear_win
    first, _ = fixed_point_uplifts(y, candidate, baseline, n_resamples=40, seed=3)
    again, _ = fixed_point_uplifts(y, candidate, baseline, n_resamples=40, seed=3)
    other, _ = fixed_point_uplifts(y, candidate, baseline, n_resamples=40, seed=4)
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


CONFIDENCE = 0.9  # the simulations test the gate at 90%: 10% false passes allowed


def binomial_tolerance(n_datasets: int) -> float:
    """2.5 standard errors of a pass rate of 1 - CONFIDENCE measured on n_datasets."""
    return 2.5 * math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / n_datasets)


def oof_points(model, y_oof, predictions_oof, constraints=()):
    """Each model's fixed operating point, chosen on its own out-of-fold rows (what
    training.fit_model writes in fit.json), never on the rows the gate values."""
    out = {}
    for name, pred in predictions_oof.items():
        point = model.choose_point(y_oof, pred, None, constraints)
        out[name] = {"value": point.value, "constraints_met": point.constraints_met}
    return out


def equal_models_gate(names, n_rows, rng, seed, noise=1.0, roles=None):
    """A baseline and candidates drawn from the same scoring process: points chosen on
    2 x n_rows independent rows, the gate run on n_rows."""
    y_oof, latent_oof = binary_data(2 * n_rows, rng)
    points = oof_points(BINARY, y_oof, {n: noisy_scores(latent_oof, noise, rng) for n in roles})
    y, latent = binary_data(n_rows, rng)
    predictions = {name: noisy_scores(latent, noise, rng) for name in roles}
    return gate_candidates(
        BINARY,
        y,
        predictions,
        roles,
        None,
        (),
        0.0,
        CONFIDENCE,
        100,
        seed,
        "EUR",
        "month",
        points=points,
    )


def test_false_pass_rate_at_zero_true_uplift_stays_within_the_confidence():
    """Neither model is truly better: both are independent draws of the same scoring process
    on the same rows. The gate must not let more than 1 - confidence of them through."""
    n_datasets, n_rows = 150, 300
    rng = np.random.default_rng(2024)
    roles = {"b": "baseline", "a": "candidate"}
    passes = sum(
        bool(equal_models_gate(roles, n_rows, rng, i, roles=roles)["passed"])
        for i in range(n_datasets)
    )
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
    any_passes = 0
    for i in range(n_datasets):
        gate = equal_models_gate(roles, n_rows, rng, 10 * i, roles=roles)
        assert gate["n_compared"] == 3
        any_passes += bool(gate["passed"])
    any_rate = any_passes / n_datasets
    print(f"\nfalse-pass rate, any of 3 equal candidates: {any_rate:.3f} ({n_datasets} datasets)")
    assert any_rate <= (1 - CONFIDENCE) + binomial_tolerance(n_datasets)


def test_no_signal_candidate_against_the_dummy_rarely_passes():
    """Issue 12: with the threshold chosen on the rows that value it (and again in every
    resample), a candidate with no signal passed against a constant dummy 42% of the time.
    At fixed out-of-fold points it can do no better than the dummy's act-always/never."""
    rng = np.random.default_rng(12)
    roles = {"dummy": "baseline", "noise": "candidate"}
    passes = 0
    for i in range(60):
        y_oof = rng.binomial(1, 0.3, 600)
        points = oof_points(BINARY, y_oof, {"dummy": np.full(600, 0.3), "noise": rng.random(600)})
        y = rng.binomial(1, 0.3, 300)
        predictions = {"dummy": np.full(300, 0.3), "noise": rng.random(300)}
        gate = gate_candidates(
            BINARY, y, predictions, roles, n_resamples=100, seed=i, points=points
        )
        passes += bool(gate["passed"])
    assert passes / 60 <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / 60)


def test_the_gate_values_fixed_points_and_never_rechooses_them():
    """The uplift is the value at the given points, not at the best point on these rows."""
    rng = np.random.default_rng(4)
    y, latent = binary_data(400, rng)
    predictions = {"base": noisy_scores(latent, 1.0, rng), "cand": noisy_scores(latent, 0.5, rng)}
    roles = {"base": "baseline", "cand": "candidate"}
    points = {"base": {"value": 0.5}, "cand": {"value": 0.9}}  # a poor threshold for cand
    gate = gate_candidates(BINARY, y, predictions, roles, n_resamples=50, points=points)
    expected = BINARY.value_at_threshold(y, predictions["cand"], 0.9) - BINARY.value_at_threshold(
        y, predictions["base"], 0.5
    )
    assert gate["candidates"]["cand"]["observed_uplift"] == pytest.approx(expected)
    best_here = BINARY.choose_threshold(
        y, predictions["cand"]
    ).value_per_period - BINARY.value_at_threshold(y, predictions["base"], 0.5)
    assert expected < best_here  # re-choosing on these rows would have flattered it
    with pytest.raises(ValueError, match="no operating point"):
        gate_candidates(
            BINARY, y, predictions, roles, n_resamples=50, points={"base": {"value": 0.5}}
        )


def test_bootstrap_at_points_is_the_value_of_the_resampled_rows():
    rng = np.random.default_rng(8)
    values = {"a": rng.normal(size=50), "b": rng.normal(size=50)}
    samples = bootstrap_at_points(values, volume=10.0, n_resamples=5, seed=3)
    draws = np.random.default_rng(3)
    for r in range(5):
        idx = draws.integers(0, 50, size=50)
        assert samples["a"][r] == pytest.approx(values["a"][idx].mean() * 10.0)
        assert samples["b"][r] == pytest.approx(values["b"][idx].mean() * 10.0)


def test_the_interval_never_excludes_its_point_estimate():
    """Issue 11: at confidence 0.51 the gate printed "beats linear by 57,000 (51% bounds
    69,000 to 69,000)"."""
    uplifts = np.full(1000, 69_000.0)
    decision = decide("xgboost", "linear", uplifts, 57_000.0, 0.0, 0.51, 1, "EUR", "month")
    assert decision.ci_lower <= 57_000.0 <= decision.ci_upper
    assert "51% bounds 57,000 to 69,000" in decision.reason


def test_money_is_never_minus_zero():
    from valuegate.gate import _money
    from valuegate.report import money

    assert _money(-0.4) == "0"
    assert money(-0.4, "EUR") == "0 EUR"
    assert money(-0.6, "EUR") == "-1 EUR"
    assert money(-1234.5, "EUR") == "-1,234 EUR"


def test_regression_candidate_closer_to_the_truth_passes_and_is_best():
    rng = np.random.default_rng(3)
    n = 300

    def draw(y):
        return {
            "mean": np.full(len(y), 50.0),
            "linear": y + rng.normal(0.0, 6.0, len(y)),
            "good": y + rng.normal(0.0, 1.0, len(y)),
            "same": y + rng.normal(0.0, 6.0, len(y)),  # as good as the best baseline, no better
        }

    y_oof = rng.normal(50.0, 10.0, 2 * n)
    points = oof_points(REGRESSION, y_oof, draw(y_oof))
    y = rng.normal(50.0, 10.0, n)
    predictions = draw(y)
    roles = {"mean": "baseline", "linear": "baseline", "good": "candidate", "same": "candidate"}
    gate = gate_candidates(
        REGRESSION,
        y,
        predictions,
        roles,
        None,
        (),
        1000.0,
        0.95,
        80,
        0,
        "EUR",
        "month",
        points=points,
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
        REGRESSION,
        y,
        predictions,
        roles,
        None,
        (),
        1000.0,
        0.95,
        80,
        0,
        "EUR",
        "month",
        points=points,
    )
    assert again == gate


def test_best_baseline_prefers_one_that_meets_the_constraints():
    rng = np.random.default_rng(5)
    y, latent = binary_data(600, rng)
    predictions = {
        "coin": np.where(rng.random(600) < 0.5, 0.0, 1.0),
        "linear": noisy_scores(latent, 1.0, rng),
        "xgboost": noisy_scores(latent, 0.3, rng),
    }
    roles = {"coin": "baseline", "linear": "baseline", "xgboost": "candidate"}
    points = {
        "coin": {"value": 0.5, "constraints_met": False},  # could not meet them out of fold
        "linear": {"value": 0.4, "constraints_met": True},
        "xgboost": {"value": 0.4, "constraints_met": True},
    }
    gate = gate_candidates(BINARY, y, predictions, roles, n_resamples=100, points=points)
    assert gate["best_baseline"] == "linear"
    assert gate["baseline_pool"] == ["linear"]
    assert gate["best_passing"] == "xgboost"
    with pytest.raises(ValueError, match="baseline"):
        gate_candidates(BINARY, y, {"xgboost": predictions["xgboost"]}, roles, points=points)


def test_a_candidate_that_cannot_meet_the_constraints_does_not_pass():
    """Out of fold no threshold met them: the candidate fails, whatever validation says
    (before, a resample without a feasible threshold fell back to the unconstrained best)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 400), 0, 1)
    baseline = np.full(400, 0.5)
    model = BinaryValueModel(
        values={"tp": (10, 0), "fp": (-1, 0), "fn": (-10, 0), "tn": (0, 0)}, volume=100
    )
    # Half the cases are positive: flagging 60% caps precision at 0.5 / 0.6 < 0.9.
    impossible = [
        parse_constraint("flag_rate >= 0.6", THRESHOLD_METRICS),
        parse_constraint("precision >= 0.9", THRESHOLD_METRICS),
    ]
    points = oof_points(model, y, {"b": baseline, "c": good}, impossible)
    assert points["c"]["constraints_met"] is False
    record = gate_candidates(
        model,
        y,
        {"b": baseline, "c": good},
        {"b": "baseline", "c": "candidate"},
        constraints=impossible,
        n_resamples=100,
        points=points,
    )
    assert record["candidates"]["c"]["passed"] is False
    assert "flag_rate >= 0.6, precision >= 0.9" in record["candidates"]["c"]["reason"]
    assert "out-of-fold" in record["candidates"]["c"]["reason"]
    assert record["best_passing"] is None


def test_gate_config_keys_are_validated_with_their_path(compose):
    from valuegate.errors import ConfigError

    config = compose()
    assert config.gate.cross_fit.folds == 5 and config.gate.calibration == "isotonic"
    assert config.gate.final_model == "gated"
    with pytest.raises(ConfigError) as info:
        compose("gate.calibration=platt", "gate.cross_fit.folds=1", "gate.final_model=best")
    text = str(info.value)
    assert "gate.calibration: 'platt' is not allowed. Allowed: isotonic, sigmoid, none" in text
    assert "gate.cross_fit.folds" in text
    assert "gate.final_model: 'best' is not allowed. Allowed: gated, most_valuable" in text
