"""Calibrated probabilities for binary models: a monotone map from a model's raw score to
the probability of the positive class, fitted on out-of-fold scores of the training split
(never on validation or test rows).

Why: the value model reads a score as a probability (expected value per decision =
p * value if positive + (1 - p) * value if negative). Raw scores of most estimators are not
probabilities (a random forest's are squashed towards the middle, a class-weighted model's
shifted), so a threshold chosen for value and the expected value of each decision would
disagree: `decision: true` where not acting is worth more. After calibration the
value-optimal threshold sits near the break-even probability of the objective.

A calibration is a JSON-ready dict (it lives in fit.json and the bundle manifest):
- `{"method": "none"}`: scores are used as they are (regression, or `gate.calibration: none`);
- `{"method": "constant", "value": p}`: the model gives one score (a dummy): p is the
  positive rate of the out-of-fold rows;
- `{"method": "sigmoid", "a": a, "b": b}`: Platt scaling on the log-odds,
  p = 1 / (1 + exp(-(a * logit(s) + b))); keeps the order of scores (ROC AUC unchanged);
- `{"method": "isotonic", "x": [...], "y": [...]}`: a non-decreasing step function through
  (x, y), linear between knots, flat outside them.

`apply_calibration` needs only numpy, so scoring (the service, batch scoring) stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METHODS = ("sigmoid", "isotonic", "none")
_EPS = 1e-6  # raw scores of exactly 0 or 1 (trees) have infinite log-odds


def _logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=float), _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def fit_calibration(method: str, scores: Any, y_true: Any) -> dict[str, Any]:
    """Fit `method` on raw scores (n,) and 0/1 labels (n,); returns the calibration dict."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration {method!r}; allowed: {', '.join(METHODS)}")
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y_true, dtype=float)
    if len(s) != len(y) or len(s) == 0:
        raise ValueError(f"calibration needs as many scores as labels (> 0): {len(s)}, {len(y)}")
    if method == "none":
        return {"method": "none"}
    if len(np.unique(s)) < 2 or len(np.unique(y)) < 2:
        # One score (or one class): the only calibrated probability is the positive rate.
        return {"method": "constant", "value": float(y.mean())}
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        # Light regularisation: separable out-of-fold scores would push `a` to infinity.
        fit = LogisticRegression(C=1e4).fit(_logit(s).reshape(-1, 1), y.astype(int))
        return {"method": "sigmoid", "a": float(fit.coef_[0, 0]), "b": float(fit.intercept_[0])}
    from sklearn.isotonic import IsotonicRegression

    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return {
        "method": "isotonic",
        "x": [float(v) for v in fit.X_thresholds_],
        "y": [float(v) for v in fit.y_thresholds_],
    }


def apply_calibration(calibration: dict[str, Any] | None, scores: Any) -> np.ndarray:
    """Raw scores (n,) -> calibrated probabilities (n,). `None` or method "none": unchanged."""
    s = np.asarray(scores, dtype=float)
    method = (calibration or {}).get("method", "none")
    if method == "none":
        return s
    if method == "constant":
        return np.full(s.shape, float(calibration["value"]))
    if method == "sigmoid":
        z = float(calibration["a"]) * _logit(s) + float(calibration["b"])
        return 1.0 / (1.0 + np.exp(-z))
    if method == "isotonic":
        knots_x = np.asarray(calibration["x"], dtype=float)
        return np.interp(s, knots_x, np.asarray(calibration["y"], dtype=float))
    raise ValueError(f"unknown calibration method {method!r}; allowed: constant, {METHODS}")
