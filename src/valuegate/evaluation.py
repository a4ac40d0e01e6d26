"""Technical metrics and curves, always reported beside business value.

Pure functions on arrays: `y_true` is 0/1 (binary) or real (regression), shape (n,);
`scores` are probabilities of the positive class, shape (n,).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from valuegate.business import (
    BinaryValueModel,
    OperatingPoint,
    ValueModel,
    regression_metrics,
    threshold_metrics,
)
from valuegate.config.schema import Config, Constraint


def binary_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss and Brier score."""
    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    one_class = len(np.unique(y)) < 2
    return {
        "roc_auc": float("nan") if one_class else float(skm.roc_auc_score(y, p)),
        "pr_auc": float("nan") if one_class else float(skm.average_precision_score(y, p)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p, pos_label=1)),
    }


def curves(y_true: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> dict[str, dict]:
    """ROC, precision-recall and calibration curves as plain column lists (for DVC plots)."""
    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    fpr, tpr, _ = skm.roc_curve(y, p)
    precision, recall, _ = skm.precision_recall_curve(y, p)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    mean_pred = np.bincount(bins, weights=p, minlength=n_bins)[filled] / counts[filled]
    frac_pos = np.bincount(bins, weights=y, minlength=n_bins)[filled] / counts[filled]
    return {
        "roc": {"fpr": fpr, "tpr": tpr},
        "pr": {"recall": recall[::-1], "precision": precision[::-1]},
        "calibration": {
            "mean_predicted": mean_pred,
            "fraction_positive": frac_pos,
            "count": counts[filled],
        },
    }


def meets(constraints: list[Constraint], values: dict[str, float]) -> bool:
    return all(c.holds(values.get(c.metric, float("nan"))) for c in constraints)


def evaluate_predictions(
    config: Config,
    model: ValueModel,
    y_true: np.ndarray,
    predictions: np.ndarray,
    amount: np.ndarray | None = None,
) -> tuple[OperatingPoint, dict[str, Any]]:
    """Choose the operating point on these rows; value it; add technical metrics.

    Returns the operating point and a flat record of figures for the metrics file.
    """
    if isinstance(model, BinaryValueModel):
        point = model.choose_threshold(y_true, predictions, amount, config.constraints)
        technical = binary_metrics(y_true, predictions)
    else:
        point = model.choose_offset(y_true, predictions, config.constraints)
        technical = regression_metrics(np.asarray(y_true, float), np.asarray(predictions, float))
    record: dict[str, Any] = {
        "value_per_period": point.value_per_period,
        point.kind: point.value,
        ("value_at_0_5" if point.kind == "threshold" else "value_at_offset_0"): (
            point.default_value_per_period
        ),
        "constraints_met": point.constraints_met,
    }
    record.update(technical)
    # Threshold-dependent metrics at the chosen threshold (regression: already technical).
    if point.kind == "threshold":
        record.update({k: v for k, v in point.metrics.items()})
    return point, record


def best_model(records: dict[str, dict[str, Any]], *roles: str) -> str:
    """The most valuable model of the given roles, preferring those that meet the
    constraints; on a tie the first in `records` (baselines come first) wins."""
    pool = {n: r for n, r in records.items() if r["role"] in roles}
    feasible = {n: r for n, r in pool.items() if r["constraints_met"]}
    pool = feasible or pool
    return max(pool, key=lambda n: pool[n]["value_per_period"])


def regression_value_curve(
    model: ValueModel, y_true: np.ndarray, predictions: np.ndarray, n_points: int = 101
) -> dict[str, np.ndarray]:
    """Value per period for offsets spanning the residuals' 1st to 99th percentile."""
    residual = np.asarray(y_true, float) - np.asarray(predictions, float)
    low, high = np.quantile(residual, [0.01, 0.99])
    offsets = np.linspace(min(low, 0.0), max(high, 0.0), n_points)
    values = np.array([model.value_per_period(y_true, predictions + o) for o in offsets])
    return {"offset": offsets, "value_per_period": values}


def _downsample(columns: dict[str, np.ndarray], max_points: int = 400) -> dict[str, list]:
    n = len(next(iter(columns.values())))
    keep = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)) if n else []
    return {k: np.asarray(v)[keep].tolist() for k, v in columns.items()}


def evaluate_models(
    config: Config,
    model: ValueModel,
    roles: dict[str, str],
    y_true: np.ndarray,
    predictions: dict[str, np.ndarray],
    amount: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, list]]]]:
    """Value every model on the same rows; uplift is measured against the best baseline.

    `roles[name]` is "baseline", "candidate" or "tuned"; `predictions[name]` has shape (n,).
    The final model is the most valuable of the baselines and the tuned models (the
    untuned candidates when none was tuned): a baseline that earns more on validation than
    every model allowed forward is what ships, since a more complex model that earns less
    has not earned its place. On a tie the baseline wins.
    Returns (metrics record, plot data per plot kind per model).
    """
    objective = config.objective
    records: dict[str, dict[str, Any]] = {}
    plots: dict[str, dict[str, dict[str, list]]] = {}
    for name, scores in predictions.items():
        point, record = evaluate_predictions(config, model, y_true, scores, amount)
        good = meets(config.good_enough_metrics, record)
        target = objective.good_enough.value_per_period
        if target is not None:
            good = good and point.value_per_period >= target
        records[name] = {"role": roles[name], **record, "good_enough_met": good}
        if isinstance(model, BinaryValueModel):
            curve = model.curve(y_true, scores, amount)
            plots.setdefault("value_threshold", {})[name] = _downsample(
                {k: curve[k] for k in ("threshold", "value_per_period")}
            )
            for kind, columns in curves(y_true, scores).items():
                plots.setdefault(kind, {})[name] = _downsample(dict(columns))
        else:
            plots.setdefault("value_offset", {})[name] = _downsample(
                regression_value_curve(model, y_true, scores)
            )
    best_baseline = best_model(records, "baseline")
    reference = records[best_baseline]["value_per_period"]
    for record in records.values():
        uplift = record["value_per_period"] - reference
        record["uplift"] = uplift
        record["uplift_matters"] = uplift >= objective.min_uplift
    best_candidate = best_model(records, "candidate")
    tuned = [n for n, r in records.items() if r["role"] == "tuned"]
    forward = "tuned" if tuned else "candidate"
    contender = best_model(records, forward)
    final = best_model(records, "baseline", forward)
    unit = f"{objective.currency}/{objective.period}"
    final_value = records[final]["value_per_period"]
    if final == contender:
        final_reason = (
            f"{final} ({forward}) goes forward: {final_value:,.0f} {unit} on validation; "
            f"the best baseline {best_baseline} earns {reference:,.0f}"
        )
    else:
        rival = records[contender]["value_per_period"]
        if final_value > rival:
            compared = "more than"
        elif final_value == rival:
            compared = "as much as (a tie goes to the simpler model)"
        else:  # only a model that meets objective.constraints is preferred over a richer one
            compared = "and meets objective.constraints, unlike"
        final_reason = (
            f"{final} (baseline) goes forward: {final_value:,.0f} {unit} on validation, "
            f"{compared} the best {forward} model {contender}'s {rival:,.0f}"
        )
    summary = {
        "split": "valid",
        "rows": len(y_true),
        "currency": objective.currency,
        "period": objective.period,
        "volume": objective.volume,
        "min_uplift": objective.min_uplift,
        "good_enough_value_per_period": objective.good_enough.value_per_period,
        "best_baseline": best_baseline,
        "best_candidate": best_candidate,
        "best_uplift": records[best_candidate]["uplift"],
        "final_model": final,
        "final_reason": final_reason,
        "models": records,
    }
    return summary, plots


LEAN_KEYS = (
    "value_per_period",
    "uplift",
    "threshold",
    "offset",
    "value_at_0_5",
    "value_at_offset_0",
    "constraints_met",
    "good_enough_met",
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
    "mae",
    "rmse",
    "r2",
)


def test_report(
    config: Config,
    model: ValueModel,
    valid_record: dict[str, Any],
    y_test: np.ndarray,
    predictions: np.ndarray,
    amount: np.ndarray | None = None,
) -> dict[str, Any]:
    """The final model on the test split, once, at the operating point chosen on
    validation (never re-chosen on test)."""
    if isinstance(model, BinaryValueModel):
        threshold = valid_record["threshold"]
        value = model.value_at_threshold(y_test, predictions, threshold, amount)
        flagged = np.asarray(predictions) >= threshold
        y = np.asarray(y_test, dtype=int)
        counts = {
            "tp": np.array([np.sum(flagged & (y == 1))]),
            "fp": np.array([np.sum(flagged & (y == 0))]),
            "fn": np.array([np.sum(~flagged & (y == 1))]),
            "tn": np.array([np.sum(~flagged & (y == 0))]),
        }
        technical = binary_metrics(y_test, predictions)
        technical.update({k: float(v[0]) for k, v in threshold_metrics(counts).items()})
        point = {"threshold": threshold}
    else:
        offset = valid_record["offset"]
        shifted = np.asarray(predictions, float) + offset
        value = model.value_per_period(y_test, shifted)
        technical = regression_metrics(np.asarray(y_test, float), shifted)
        point = {"offset": offset}
    return {"split": "test", "rows": len(y_test), "value_per_period": value, **point, **technical}


def lean_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """What `dvc exp show` lists per model: value, uplift, operating point, technical
    metrics (the full record, with every threshold metric, lives in reports/)."""
    final = summary.get("final")
    return {
        "best_candidate": summary["best_candidate"],
        "best_uplift": summary["best_uplift"],
        "final": (
            {
                "model": final["model"],
                "valid_value_per_period": final["valid"]["value_per_period"],
                "valid_uplift_ci_lower": final["valid"]["uplift_ci_lower"],
                "valid_uplift_ci_upper": final["valid"]["uplift_ci_upper"],
                "test_value_per_period": final["test"]["value_per_period"],
            }
            if final
            else None
        ),
        "models": {
            name: {k: record[k] for k in LEAN_KEYS if k in record}
            for name, record in summary["models"].items()
        },
    }
