"""What the model is worth in a window, in money per period, from the one value model
(`business.value_model`): realised where labels exist, estimated from calibrated scores
where they do not, and the value at risk against the value at deploy. Pure.

Estimated value without labels (binary): the score is a calibrated probability p_i, so
the expected value of decision d_i is p_i v_i(1) + (1 - p_i) v_i(0), where v_i(y) is the
value of that decision if the outcome is y (`case_values_at` with y = 1 or 0). The window's
realised value is then a sum of independent two-point outcomes (a Poisson-binomial sum of
money): its variance is sum p_i (1 - p_i) (v_i(1) - v_i(0))^2. The calibration itself is
uncertain: each reference score bin's observed rate has a binomial standard error, and
every row in that bin moves with it (fully correlated within a bin), which adds
sum_b (sum_{i in b} (v_i(1) - v_i(0)))^2 se_b^2. The interval (`low`, `high`) is for the
window's realised value, normal, at `confidence`.

Value at risk compares two value *rates* (this window's vs. the deploy test's), each a
sample of cases: the window's standard error there also holds the between-case spread
(var of the expected case values / n); the two samples are independent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from valuegate.monitor.profile import value_evidence

# The calibration table says the estimate is unreliable when its Hosmer-Lemeshow p-value is
# below this, or when more than OUT_OF_RANGE_SHARE of the window's scores lie outside the
# reference scores' range (the calibration there is an extrapolation).
CALIBRATION_ALPHA = 0.01
OUT_OF_RANGE_SHARE = 0.1


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def realised_value(
    model: Any, y_true: Any, scores: Any, point: float, amount: Any | None, confidence: float
) -> dict[str, Any]:
    """Value per period of the labelled rows (n,) at the deployed point, with its standard
    error and interval (the rows as a sample of cases)."""
    return value_evidence(model, y_true, scores, point, amount, confidence)


def estimated_value(
    model: Any,
    probability: Any,
    point: float,
    amount: Any | None,
    calibration: dict[str, Any] | None,
    score_profile: dict[str, Any],
    confidence: float,
) -> dict[str, Any]:
    """Expected value per period of the window's decisions from calibrated scores (n,),
    with the interval the window's realised value should fall in (module docstring), the
    standard error of the value rate (`se_rate`, for value at risk), and `reliable` +
    `warnings` from the calibration table. Regression: None (its cost needs the outcome)."""
    if model.point_kind != "threshold":
        return None
    p = np.asarray(probability, dtype=float)
    n = len(p)
    if_positive = model.case_values_at(np.ones(n), p, point, amount)
    if_negative = model.case_values_at(np.zeros(n), p, point, amount)
    spread = if_positive - if_negative
    expected = p * if_positive + (1.0 - p) * if_negative
    volume = model.volume
    outcome_var = float(np.sum(p * (1.0 - p) * spread**2))
    warnings: list[str] = []
    calibration_var = 0.0
    if calibration is not None:
        edges = np.asarray(calibration["edges"], dtype=float)
        rows = np.asarray(calibration["rows"], dtype=float)
        rate = np.array([np.nan if r is None else r for r in calibration["positive_rate"]])
        # a bin's rate from r rows: binomial se, with half a case each way when it is 0 or 1
        smoothed = (np.nan_to_num(rate) * rows + 0.5) / (rows + 1.0)
        se_bin = np.sqrt(smoothed * (1 - smoothed) / np.maximum(rows, 1.0))
        index = np.searchsorted(edges, p, side="left")
        sensitivity = np.bincount(index, weights=spread, minlength=len(rows))
        calibration_var = float(np.sum((sensitivity * se_bin) ** 2))
        if calibration["p_value"] < CALIBRATION_ALPHA:
            warnings.append(
                f"the calibration table rejects the scores as probabilities on the reference "
                f"rows (Hosmer-Lemeshow p = {calibration['p_value']:.2g}): the estimate may be "
                "biased"
            )
    low_ref, high_ref = score_profile.get("min"), score_profile.get("max")
    if low_ref is not None and n:
        outside = float(np.mean((p < low_ref) | (p > high_ref)))
        if outside > OUT_OF_RANGE_SHARE:
            warnings.append(
                f"{outside:.0%} of the window's scores lie outside the reference scores' range "
                f"[{low_ref:.3g}, {high_ref:.3g}]: the calibration there is extrapolated"
            )
    mean = float(expected.mean()) * volume
    se = np.sqrt(outcome_var + calibration_var) / n * volume
    between = float(expected.var()) if n > 1 else 0.0
    se_rate = np.sqrt((between + outcome_var / n) / n + calibration_var / n**2) * volume
    z = _z(confidence)
    return {
        "rows": n,
        "value_per_period": mean,
        "se": float(se),
        "se_rate": float(se_rate),
        "low": mean - z * float(se),
        "high": mean + z * float(se),
        "confidence": confidence,
        "flag_rate": float(np.mean(p >= point)) if n else float("nan"),
        "reliable": not warnings,
        "warnings": warnings,
    }


def value_at_risk(
    now: dict[str, Any], deploy: dict[str, Any], confidence: float, source: str
) -> dict[str, Any]:
    """Value per period now minus at deploy, with its standard error and interval (the two
    value rates are independent samples). `now` needs `value_per_period` and `se_rate` (or
    `se`); `deploy` needs `value_per_period` and `se`. Negative: the model is worth less."""
    se_now = now.get("se_rate", now.get("se"))
    diff = float(now["value_per_period"] - deploy["value_per_period"])
    se = float(np.sqrt(np.nan_to_num(se_now) ** 2 + np.nan_to_num(deploy["se"]) ** 2))
    z = _z(confidence)
    return {
        "value_per_period": diff,
        "se": se,
        "low": diff - z * se,
        "high": diff + z * se,
        "confidence": confidence,
        "now": source,
        "now_value_per_period": float(now["value_per_period"]),
        "deploy_value_per_period": float(deploy["value_per_period"]),
    }
