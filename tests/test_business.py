"""The value model, against figures computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from valuegate.business import BinaryValueModel, RegressionValueModel
from valuegate.config.schema import THRESHOLD_METRICS, parse_constraint

Y = np.array([1, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.3, 0.1])
FIXED = BinaryValueModel(
    values={"tp": (10, 0), "fp": (-2, 0), "fn": (-20, 0), "tn": (1, 0)}, volume=100
)


def test_confusion_matrix_value_by_hand():
    # flag rows 0 and 2: tp + tn + tp + tn = 10 + 1 + 10 + 1 = 22 -> 5.5 per case
    assert FIXED.value_per_period(Y, [1, 0, 1, 0]) == pytest.approx(550.0)
    # flag nothing: fn + tn + fn + tn = -38 -> -9.5 per case
    assert FIXED.value_per_period(Y, [0, 0, 0, 0]) == pytest.approx(-950.0)


def test_curve_lists_every_decision_from_none_to_all():
    curve = FIXED.curve(Y, SCORES)
    # none, top 1, top 2, top 3, all (hand-computed sums / 4 cases * 100)
    assert curve["value_per_period"] == pytest.approx([-950, -200, -275, 475, 400])
    assert curve["tp"].tolist() == [0, 1, 1, 2, 2]
    assert curve["fp"].tolist() == [0, 0, 1, 1, 2]


def test_threshold_maximises_value_and_reports_value_at_half():
    point = FIXED.choose_threshold(Y, SCORES)
    assert point.value == pytest.approx(0.2)  # midway between 0.3 and 0.1
    assert point.value_per_period == pytest.approx(475.0)
    # at 0.5 rows 0 and 1 are flagged: tp + fp + fn + tn = -11 -> -275
    assert point.default_value_per_period == pytest.approx(-275.0)
    assert point.constraints_met


def test_threshold_under_a_precision_constraint():
    constraint = parse_constraint("precision >= 0.7", THRESHOLD_METRICS)
    point = FIXED.choose_threshold(Y, SCORES, constraints=[constraint])
    # only "flag the top case" has precision >= 0.7 (1.0); top 3 has 2/3
    assert point.value == pytest.approx(0.85)
    assert point.value_per_period == pytest.approx(-200.0)
    assert point.metrics["precision"] == pytest.approx(1.0)


def test_impossible_constraint_is_reported_not_hidden():
    constraint = parse_constraint("recall >= 0.9", THRESHOLD_METRICS)
    strict = parse_constraint("flag_rate <= 0.1", THRESHOLD_METRICS)
    point = FIXED.choose_threshold(Y, SCORES, constraints=[constraint, strict])
    assert not point.constraints_met
    assert point.value_per_period == pytest.approx(475.0)


def test_per_row_amounts():
    model = BinaryValueModel(
        values={"tp": (0, 0), "fp": (0, 0), "fn": (0, -1.0), "tn": (0, 0.1)}, volume=1
    )
    amount = np.array([100, 50, 200, 10])
    # nothing flagged: fn(100) + tn(50) + fn(200) + tn(10) = -100 + 5 - 200 + 1 = -294
    assert model.value_per_period(Y, [0, 0, 0, 0], amount) == pytest.approx(-294 / 4)
    # flag the top-scored row only: 0 + 5 - 200 + 1 = -194
    assert model.value_at_threshold(Y, SCORES, 0.85, amount) == pytest.approx(-194 / 4)
    point = model.choose_threshold(Y, SCORES, amount)
    # best: flag the top 3 (rows 0, 1, 2): tp 0 + fp 0 + tp 0 + tn(10) 1 = 1
    assert point.value_per_period == pytest.approx(1 / 4)
    assert point.value == pytest.approx(0.2)


def test_ties_are_flagged_together_and_thresholds_reproduce_the_curve():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = rng.integers(0, 20, 300) / 19.0  # many ties, includes 0.0 and 1.0
    amount = rng.uniform(10, 1000, 300)
    model = BinaryValueModel(
        values={"tp": (5, 0.01), "fp": (-1, 0), "fn": (-3, -0.02), "tn": (2, 0)}, volume=7
    )
    curve = model.curve(y, scores, amount)
    assert len(curve["threshold"]) == len(np.unique(scores)) + 1
    for threshold, value in zip(curve["threshold"], curve["value_per_period"], strict=True):
        assert model.value_at_threshold(y, scores, threshold, amount) == pytest.approx(value)


def test_flat_optimum_picks_the_middle_of_the_plateau():
    y = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    model = BinaryValueModel(
        values={"tp": (1, 0), "fp": (-1, 0), "fn": (-1, 0), "tn": (1, 0)}, volume=1
    )
    point = model.choose_threshold(y, scores)
    assert point.value == pytest.approx(0.5)  # between 0.8 and 0.2: the only perfect cut


def test_regression_asymmetric_cost_by_hand():
    model = RegressionValueModel(under=4, over=1, tolerance=0, volume=10)
    # errors -2 (under: 2 * 4 = 8) and +3 (over: 3 * 1 = 3) -> mean cost 5.5
    assert model.value_per_period([10, 10], [8, 13]) == pytest.approx(-55.0)
    banded = RegressionValueModel(under=4, over=1, tolerance=1, volume=10)
    # beyond the band: 1 * 4 and 2 * 1 -> mean cost 3
    assert banded.value_per_period([10, 10], [8, 13]) == pytest.approx(-30.0)
    assert banded.value_per_period([10], [10.9]) == 0.0


def test_regression_offset_moves_to_the_cost_quantile():
    model = RegressionValueModel(under=3, over=1, tolerance=0, volume=1)
    y = np.arange(1.0, 101.0)
    point = model.choose_offset(y, np.zeros_like(y))
    # the optimal shift is the 3 / (3 + 1) = 75th percentile of the residuals
    assert 74.0 <= point.value <= 77.0
    assert point.value_per_period > point.default_value_per_period
    assert point.value_per_period == pytest.approx(model.value_per_period(y, y * 0 + point.value))


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        FIXED.curve([], [])
    with pytest.raises(ValueError, match="rows"):
        FIXED.curve([1, 0], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        FIXED.curve([1, 0], [0.5, np.nan])


def test_expected_value_of_a_decision_by_hand_and_scalar_equals_vector():
    from valuegate.business import BinaryValueModel

    model = BinaryValueModel(
        values={"tp": (0.0, 0.0), "fp": (-50.0, 0.0), "fn": (-1500.0, 0.0), "tn": (0.0, 0.09)},
        volume=100,
    )
    # approve (not flagged), p(bad) = 0.1, loan 2,000: 0.1 * -1500 + 0.9 * (0.09 * 2000)
    assert model.expected_value(0.1, False, 2000.0) == pytest.approx(-150.0 + 162.0)
    # reject (flagged): 0.1 * 0 + 0.9 * -50
    assert model.expected_value(0.1, True, 2000.0) == pytest.approx(-45.0)
    rng = np.random.default_rng(0)
    p, flagged, amount = rng.random(50), rng.random(50) > 0.5, rng.uniform(100, 5000, 50)
    vector = model.expected_case_values(p, flagged, amount)
    scalar = [
        model.expected_value(a, bool(b), c) for a, b, c in zip(p, flagged, amount, strict=True)
    ]
    assert np.allclose(vector, scalar)
