"""The value model, against figures computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from valuegate.business import BinaryValueModel, RegressionValueModel, fixed_operating_point
from valuegate.calibration import apply_calibration, fit_calibration
from valuegate.config.schema import THRESHOLD_METRICS, parse_constraint

ROOT = Path(__file__).resolve().parents[1]

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


# --------------------------------------------------------------- operating points (issue 12)


def test_the_operating_point_api_is_the_same_on_both_value_models():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = rng.random(300)
    binary = BinaryValueModel(
        values={"tp": (5, 0), "fp": (-1, 0), "fn": (-3, 0), "tn": (2, 0)}, volume=10
    )
    assert binary.point_kind == "threshold" and binary.default_point == 0.5
    per_case = binary.case_values_at(y, scores, 0.4)
    assert per_case.mean() * 10 == pytest.approx(binary.value_at_point(y, scores, 0.4))
    assert binary.value_at_point(y, scores, 0.4) == binary.value_at_threshold(y, scores, 0.4)
    chosen = binary.choose_point(y, scores)
    assert chosen.value == binary.choose_threshold(y, scores).value
    at = binary.metrics_at_point(y, scores, 0.4)
    flagged = scores >= 0.4
    assert at["precision"] == pytest.approx(y[flagged].mean())
    assert (
        binary.metrics_at_point(y, scores, 2.0)["precision"]
        != binary.metrics_at_point(y, scores, 2.0)["precision"]
    )  # NaN: nothing flagged

    regression = RegressionValueModel(under=3, over=1, tolerance=0.5, volume=10)
    target = rng.normal(size=300)
    pred = target + rng.normal(size=300)
    assert regression.point_kind == "offset" and regression.default_point == 0.0
    assert regression.value_at_point(target, pred, 0.3) == pytest.approx(
        regression.value_per_period(target, pred + 0.3)
    )
    assert regression.case_values_at(target, pred, 0.3).mean() * 10 == pytest.approx(
        regression.value_at_point(target, pred, 0.3)
    )
    assert regression.metrics_at_point(target, pred, 0.0)["mae"] == pytest.approx(
        np.abs(pred - target).mean()
    )
    assert regression.decision_gain(pred) is None


def test_break_even_probability_and_decision_gain():
    credit = BinaryValueModel(
        values={"tp": (0, 0), "fp": (0, 0), "fn": (-1500, 0), "tn": (300, 0)}, volume=2000
    )
    assert credit.break_even_probability() == pytest.approx(300 / 1800)
    gain = credit.decision_gain(np.array([0.1, 300 / 1800, 0.5]))
    assert gain[0] < 0 and gain[1] == pytest.approx(0) and gain[2] > 0
    with_amount = BinaryValueModel(
        values={"tp": (0, 0), "fp": (0, 0), "fn": (0, -1), "tn": (0, 0.1)}, volume=1
    )
    assert with_amount.break_even_probability() is None


def test_fixed_operating_point_reports_its_uncertainty_and_the_dummy_acts():
    rng = np.random.default_rng(3)
    y = (rng.random(800) < 0.3).astype(float)
    scores = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.15, 800), 0, 1)
    credit = BinaryValueModel(
        values={"tp": (0, 0), "fp": (0, 0), "fn": (-1500, 0), "tn": (300, 0)}, volume=2000
    )
    point = fixed_operating_point(credit, y, scores, n_resamples=60, seed=1)
    low, high = point["interval"]
    assert low <= point["value"] <= high
    assert point["value_cost"] >= 0
    assert point["acts"] is None and point["constraints_met"] is True
    json.dumps(point)
    dummy = fixed_operating_point(credit, y, np.full(800, 0.3), n_resamples=20)
    # Rejecting everyone is worth 0; approving everyone loses money: the dummy acts always.
    assert dummy["acts"] == "always"
    impossible = [
        parse_constraint("flag_rate >= 0.9", THRESHOLD_METRICS),
        parse_constraint("precision >= 0.9", THRESHOLD_METRICS),
    ]
    refused = fixed_operating_point(credit, y, scores, None, impossible, n_resamples=20)
    assert refused["constraints_met"] is False


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_turns_squashed_scores_into_probabilities(method):
    rng = np.random.default_rng(5)
    p_true = rng.uniform(0.02, 0.9, 4000)
    y = (rng.random(4000) < p_true).astype(int)
    squashed = 0.4 + 0.2 * p_true  # ranks right, far from a probability
    calibration = fit_calibration(method, squashed, y)
    json.dumps(calibration)
    calibrated = apply_calibration(calibration, squashed)
    assert np.all(np.diff(calibrated[np.argsort(squashed)]) >= -1e-12)  # order kept
    assert np.abs(calibrated - p_true).mean() < 0.06
    assert np.abs(squashed - p_true).mean() > 0.15
    assert apply_calibration({"method": "none"}, squashed) is not None
    np.testing.assert_array_equal(apply_calibration(None, squashed), squashed)
    assert fit_calibration(method, np.full(50, 0.2), y[:50])["method"] == "constant"


def test_fit_model_chooses_its_point_out_of_fold_and_scores_calibrated(compose):
    """Contract C: fit.json holds the operating point, chosen on out-of-fold scores of the
    training split (never on validation), and the calibration; predictions hold calibrated
    scores, so score, threshold and expected value per decision agree."""
    from valuegate.data import load_raw, prepare, target_vector
    from valuegate.training import fit_model

    config = compose("gate.cross_fit.folds=3", "gate.cross_fit.choice_resamples=30")
    splits, schema = prepare(load_raw(config.data, ROOT), config.data, config.seed, "x")
    fitted = fit_model("linear", "baseline", config.baseline["linear"], config, schema, splits)
    point = fitted.info["operating_point"]
    assert point["kind"] == "threshold"
    assert point["rows"] == len(splits["train"])
    assert "out-of-fold" in point["chosen_on"] and point["fold_kind"] == "kfold"
    assert fitted.info["calibration"]["method"] == "isotonic"
    assert point["flagged_against_expected_value"] == 0
    assert point["kept_against_expected_value"] == 0
    # At the objective's break-even probability (1/6): acting is worth it exactly above it.
    assert point["value"] == pytest.approx(1 / 6)
    valid = fitted.predictions.query("split == 'valid'")["score"].to_numpy()
    y_valid = target_vector(splits["valid"], config.data)
    assert abs(valid.mean() - y_valid.mean()) < 0.08  # calibrated: mean score ~ positive rate
    dummy = fit_model("dummy", "baseline", config.baseline["dummy"], config, schema, splits)
    assert dummy.info["operating_point"]["acts"] == "always"


def test_a_bundle_scores_calibrated_like_its_predictions(tmp_path):
    """Contract C: the service and batch scoring apply the manifest's calibration, so the
    score the shipped threshold applies to is the one it was chosen on."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from valuegate.bundle import Bundle

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200)})
    y = (frame["x"] + rng.normal(size=200) > 0).astype(int)
    pipeline = make_pipeline(LogisticRegression()).fit(frame, y)
    raw = pipeline.predict_proba(frame)[:, 1]
    calibration = fit_calibration("isotonic", raw, y)
    manifest = {
        "model": {"task": "binary"},
        "input": {"fields": [{"name": "x", "dtype": "float64"}]},
        "calibration": calibration,
    }
    bundle = Bundle(tmp_path, manifest, pipeline, None, None)
    np.testing.assert_allclose(bundle.score_frame(frame), apply_calibration(calibration, raw))
    assert bundle.score_record({"x": 0.3}) == pytest.approx(
        apply_calibration(calibration, pipeline.predict_proba(pd.DataFrame({"x": [0.3]}))[:, 1])[0]
    )
    uncalibrated = Bundle(tmp_path, {**manifest, "calibration": None}, pipeline, None, None)
    np.testing.assert_allclose(uncalibrated.score_frame(frame), raw)


def test_break_even_probability_only_inside_zero_one():
    def model(tp, fp, fn, tn):
        values = {"tp": (tp, 0), "fp": (fp, 0), "fn": (fn, 0), "tn": (tn, 0)}
        return BinaryValueModel(values=values, volume=1)

    assert model(0, 0, -1500, 300).break_even_probability() == pytest.approx(1 / 6)
    # acting pays even on a negative case (fp > tn): act always, no break-even
    assert model(10, 5, 0, 0).break_even_probability() is None
    # acting costs even on a positive case (tp < fn): never act, no break-even
    assert model(-5, -10, 0, 0).break_even_probability() is None


# --------------------------------------------------- one interface, one builder (issue 13)

BOTH_KINDS = [
    pytest.param(
        BinaryValueModel(
            values={"tp": (0, 0), "fp": (0, 0.01), "fn": (-1500, 0), "tn": (300, 0)}, volume=20
        ),
        id="binary",
    ),
    pytest.param(RegressionValueModel(under=3, over=1, tolerance=0.2, volume=20), id="regression"),
]


def _rows(model, n=240, seed=4):
    """(y, scores or predictions, amount), shape (n,) each, for `model`'s task."""
    rng = np.random.default_rng(seed)
    amount = rng.uniform(100, 5000, n)
    if model.task == "binary":
        y = (rng.random(n) < 0.3).astype(float)
        return y, np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1), amount
    y = rng.normal(10, 2, n)
    return y, y + rng.normal(0, 1, n), amount


@pytest.mark.parametrize("model", BOTH_KINDS)
def test_the_same_calls_give_coherent_answers_on_both_value_models(model):
    """Every caller (gate, evaluation, deploy, tuning, report, bundle) uses these calls
    without asking which kind of value model it holds."""
    y, scores, amount = _rows(model)
    point = model.choose_point(y, scores, amount)
    assert point.kind == model.point_kind and model.point_label
    # per period = mean per case x volume, at any point
    for at in (point.value, model.default_point):
        per_case = model.case_values_at(y, scores, at, amount)
        assert per_case.shape == (len(y),)
        assert per_case.mean() * model.volume == pytest.approx(
            model.value_at_point(y, scores, at, amount)
        )
    assert point.value_per_period == pytest.approx(
        model.value_at_point(y, scores, point.value, amount)
    )
    assert point.default_value_per_period == pytest.approx(
        model.value_at_point(y, scores, model.default_point, amount)
    )
    # the chosen point is worth at least every point of the value curve (no constraints)
    curve = model.value_curve(y, scores, amount)
    assert list(curve) == [model.point_kind, "value_per_period"]
    assert point.value_per_period >= curve["value_per_period"].max() - 1e-9 * abs(
        point.value_per_period
    )
    # decisions: the array call and the one-record call agree
    decided = model.decide(scores, point.value, amount)
    assert decided["decision"].shape == decided["expected_value"].shape == (len(y),)
    for i in (0, 7, 100):
        one, ev = model.decide_one(float(scores[i]), point.value, float(amount[i]))
        assert one == decided["decision"][i]
        assert (ev is None and np.isnan(decided["expected_value"][i])) or ev == pytest.approx(
            decided["expected_value"][i]
        )
    metrics = model.metrics_at_point(y, scores, point.value, amount)
    assert metrics and all(isinstance(v, float) for v in metrics.values())
    assert model.acts(scores, point.value) is None  # a real score / prediction
    regret = model.regret_at(y, scores, point.value, amount)
    assert regret is None or (regret.shape == (len(y),) and regret.min() >= 0)
    assert model.metric_point_worth(y, scores, point.value, amount)["kind"] == model.task


def test_binary_decisions_carry_their_expected_value_and_regression_needs_the_outcome():
    binary, regression = (p.values[0] for p in BOTH_KINDS)
    scores = np.array([0.05, 0.5, 0.9])
    amount = np.array([1000.0, 1000.0, 1000.0])
    decided = binary.decide(scores, 1 / 6, amount)
    np.testing.assert_array_equal(decided["decision"], [False, True, True])
    # not flagged at p=0.05: 0.05 * fn + 0.95 * tn = -75 + 285; flagged: fp = 0.01 * amount
    assert decided["expected_value"][0] == pytest.approx(-75 + 285)
    assert decided["expected_value"][1] == pytest.approx(0.5 * 10)
    shifted = regression.decide(np.array([1.0, 2.0]), 0.25)
    np.testing.assert_array_equal(shifted["decision"], [1.25, 2.25])
    assert np.isnan(shifted["expected_value"]).all()
    assert binary.acts(np.full(5, 0.3), 0.2) == "always"
    assert binary.acts(np.full(5, 0.1), 0.2) == "never"


@pytest.mark.parametrize(
    "experiment", [(), ("+experiment=diabetes",), ("+experiment=credit_by_amount",)]
)
def test_a_manifest_round_trip_gives_the_value_model_of_the_config(compose, experiment):
    """A bundle stores `model.task` and `objective` (config.objective.model_dump(), as JSON);
    `value_model_from_record` builds from them with the same builder as `value_model`."""
    from valuegate.business import value_model, value_model_from_record

    config = compose(*experiment)
    from_config = value_model(config)
    record = json.loads(json.dumps(config.objective.model_dump()))
    from_record = value_model_from_record(config.data.task, record)
    assert from_record == from_config and type(from_record) is type(from_config)
    y, scores, amount = _rows(from_config, seed=9)
    a = from_config.choose_point(y, scores, amount)
    b = from_record.choose_point(y, scores, amount)
    assert a == b
    np.testing.assert_array_equal(
        from_config.case_values_at(y, scores, a.value, amount),
        from_record.case_values_at(y, scores, a.value, amount),
    )


def test_a_record_that_makes_no_value_model_is_refused_by_name(compose):
    from valuegate.business import value_model_from_record

    objective = compose().objective.model_dump()
    with pytest.raises(ValueError, match=r"objective\.cost"):
        value_model_from_record("regression", objective)  # a binary objective
    with pytest.raises(ValueError, match="volume"):
        value_model_from_record("binary", {**objective, "volume": -1})
    with pytest.raises(ValueError, match="task must be one of"):
        value_model_from_record("multiclass", objective)


def test_a_bundle_builds_its_value_model_from_its_manifest(compose, tmp_path):
    from valuegate.bundle import Bundle, decide
    from valuegate.business import value_model
    from valuegate.errors import ArtifactError

    config = compose()
    manifest = {
        "model": {"task": "binary"},
        "objective": json.loads(json.dumps(config.objective.model_dump())),
        "decision": {"kind": "threshold", "value": 0.25},
    }
    bundle = Bundle(tmp_path, manifest, None, None, None)
    assert bundle.value_model == value_model(config)
    scores = np.array([0.1, 0.3])
    decided = decide(bundle, scores)
    np.testing.assert_array_equal(decided["decision"], [False, True])
    np.testing.assert_allclose(
        decided["expected_value"], value_model(config).decide(scores, 0.25)["expected_value"]
    )
    broken = Bundle(tmp_path, {**manifest, "objective": {"name": "x"}}, None, None, None)
    with pytest.raises(ArtifactError, match="objective"):
        broken.value_model  # noqa: B018


def test_no_caller_asks_which_kind_of_value_model_it_holds():
    """Acceptance of issue 13: outside business.py nothing branches on the value model's
    class (the task may still pick ROC AUC or R2)."""
    import re

    pattern = re.compile(r"isinstance\(.*ValueModel")
    found = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in (ROOT / "src" / "valuegate").rglob("*.py")
        if path.name != "business.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


# ------------------------------------------------------------------------ file hashing


def test_one_file_hash_helper_streams_and_is_used_everywhere(tmp_path):
    import hashlib

    from valuegate import artifacts, data
    from valuegate.bundle import sha256_file as from_bundle
    from valuegate.hashing import sha256_file

    path = tmp_path / "blob"
    payload = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # several read blocks
    path.write_bytes(payload)
    assert sha256_file(path) == hashlib.sha256(payload).hexdigest()
    assert sha256_file(str(path)) == sha256_file(path)
    assert from_bundle is sha256_file and data.file_sha256 is sha256_file
    assert artifacts.sha256_file is sha256_file
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "missing")
