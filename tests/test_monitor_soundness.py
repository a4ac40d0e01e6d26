"""Monitoring that does not cry wolf, by simulation with a fixed seed (docs/monitoring.md).

- No drift: the share of windows raising any drift alert stays at alpha (Holm over the
  window's features and its score), for several sample sizes, a reference much smaller than
  the window among them, with unlike features (coarse, constant, gappy, rare levels).
- A planted shift is found (power reported).
- The estimated value's interval covers the window's realised value at its confidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from valuegate.business import BinaryValueModel
from valuegate.monitor.drift import drift_tests
from valuegate.monitor.profile import (
    calibration_table,
    categorical_profile,
    current_counts,
    numeric_profile,
    reference_counts,
)
from valuegate.monitor.value import estimated_value

ALPHA = 0.05
LEVELS = np.array(list("abcdefgh"))
LEVEL_P = np.array([0.5, 0.2, 0.12, 0.08, 0.05, 0.03, 0.015, 0.005])
SIZES = [(100, 4000), (300, 6000), (1000, 1000), (2000, 5000)]  # (reference, window) rows


def draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Eleven unlike features; `shift` moves x0's mean (in standard deviations)."""
    gappy = rng.exponential(size=n)
    gappy[rng.random(n) < 0.1] = np.nan
    return {
        "x0": rng.normal(shift, 1.0, n),
        "x1": rng.normal(size=n),
        "x2": rng.lognormal(size=n),
        "x3": rng.uniform(size=n),
        "coarse": rng.integers(0, 3, n).astype(float),
        "constant": np.ones(n),
        "gappy": gappy,
        "c0": LEVELS[rng.choice(8, n, p=LEVEL_P)],
        "c1": LEVELS[rng.choice(8, n, p=LEVEL_P)],
        "c2": LEVELS[rng.choice(2, n, p=[0.9, 0.1])],
        "score": rng.beta(2, 5, n),
    }


def any_alert(rng: np.random.Generator, n_ref: int, n_cur: int, shift: float) -> bool:
    ref, cur = draw(rng, n_ref), draw(rng, n_cur, shift)
    names, r, c, spacings = [], [], [], []
    for name, values in ref.items():
        if name.startswith("c") and name != "coarse" and name != "constant":
            entry = categorical_profile(pd.Series(values), 50)
        else:
            entry = numeric_profile(values, 10)
        names.append(name)
        r.append(reference_counts(entry))
        c.append(current_counts(entry, cur[name]))
        spacings.append(entry.get("continuous", False))
    tests = drift_tests(names, r, c, ALPHA, 0.0, spacings=spacings)
    return any(t["drifted"] for t in tests)


@pytest.mark.slow  # ~30 s on one core: 600 windows
def test_no_drift_raises_alerts_at_alpha_and_a_shift_is_found():
    rng = np.random.default_rng(20261130)
    windows = 150  # per size: 600 windows in all
    false_rates, power = {}, {}
    for n_ref, n_cur in SIZES:
        false_rates[(n_ref, n_cur)] = np.mean(
            [any_alert(rng, n_ref, n_cur, 0.0) for _ in range(windows)]
        )
        power[(n_ref, n_cur)] = np.mean([any_alert(rng, n_ref, n_cur, 0.5) for _ in range(40)])
    overall = float(np.mean(list(false_rates.values())))
    print(f"false-alert rate per (reference, window) rows: {false_rates}; all: {overall:.3f}")
    print(f"power at a 0.5 sd shift of one feature: {power}")
    assert overall <= ALPHA + 0.02  # 600 windows: one standard error is 0.9 points
    assert max(false_rates.values()) <= ALPHA + 0.045  # 150 windows each: +2.5 se
    assert power[(2000, 5000)] >= 0.95 and power[(1000, 1000)] >= 0.9


def test_the_estimated_value_interval_covers_the_realised_value():
    rng = np.random.default_rng(7)
    model = BinaryValueModel(
        values={"tp": (0.0, 0.0), "fp": (-300.0, 0.0), "fn": (-1500.0, 0.0), "tn": (300.0, 0.0)},
        volume=2000,
    )
    # a calibration table from 2,000 reference rows whose scores are probabilities
    p_ref = rng.beta(2, 5, 2000)
    edges = np.quantile(p_ref, np.arange(1, 10) / 10)
    calibration = calibration_table(p_ref, rng.random(2000) < p_ref, edges)
    profile = numeric_profile(p_ref, 10)
    covered, covered_pb = [], []
    for _ in range(400):
        p = rng.beta(2, 5, 500)
        y = (rng.random(500) < p).astype(float)
        realised = float(model.case_values_at(y, p, 0.17).mean() * model.volume)
        est = estimated_value(model, p, 0.17, None, calibration, profile, 0.95)
        bare = estimated_value(model, p, 0.17, None, None, profile, 0.95)
        covered.append(est["low"] <= realised <= est["high"])
        covered_pb.append(bare["low"] <= realised <= bare["high"])
        assert est["reliable"]
    print(
        f"coverage with / without the calibration term: {np.mean(covered)}, {np.mean(covered_pb)}"
    )
    assert 0.93 <= np.mean(covered_pb) <= 0.97  # the Poisson-binomial interval alone
    assert np.mean(covered) >= 0.95  # calibration's own uncertainty only widens it


def test_a_miscalibrated_reference_makes_the_estimate_unreliable():
    rng = np.random.default_rng(1)
    p_ref = rng.beta(2, 5, 2000)
    y_ref = rng.random(2000) < np.clip(p_ref * 1.8, 0, 1)  # the scores understate the risk
    calibration = calibration_table(p_ref, y_ref, np.quantile(p_ref, np.arange(1, 10) / 10))
    model = BinaryValueModel(
        values={"tp": (0.0, 0.0), "fp": (-300.0, 0.0), "fn": (-1500.0, 0.0), "tn": (300.0, 0.0)},
        volume=2000,
    )
    profile = numeric_profile(p_ref, 10)
    est = estimated_value(model, p_ref[:500], 0.17, None, calibration, profile, 0.95)
    assert not est["reliable"] and "Hosmer-Lemeshow" in est["warnings"][0]
