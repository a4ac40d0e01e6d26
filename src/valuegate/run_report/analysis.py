"""The business report's figures: pure functions, arrays and records in, records out.

Every money figure here comes from the one value model (`valuegate.business`) applied to
the pipeline's own predictions at each model's fixed operating point (fit.json), or is read
from the pipeline's records; nothing re-chooses a point or values a model another way.
Money is currency per period unless a name says per case.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from valuegate.business import ValueModel
from valuegate.config.schema import Constraint
from valuegate.gate import bootstrap_at_points, case_values_at_points

# A segment smaller than this share of the validation rows (or than MIN_SEGMENT_ROWS) is
# too noisy to blame: one unlucky case would make it "lose money".
MIN_SEGMENT_SHARE = 0.02
MIN_SEGMENT_ROWS = 5
NUMERIC_BINS = 4  # quartiles of a numeric feature on validation
MAX_LEVELS = 8  # a categorical feature's most frequent levels; the rest are "other"


def value_intervals(
    model: ValueModel,
    y_true: Any,
    predictions: dict[str, Any],
    points: dict[str, float],
    recorded: dict[str, float],
    amount: Any | None = None,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Each model's value per period on validation with a two-sided `confidence` interval.

    `predictions[name]`: validation scores, shape (n,); `points[name]`: its fixed operating
    point; `recorded[name]`: the value per period the evaluation recorded. The interval is
    the gate's paired bootstrap of the validation rows at fixed points
    (`gate.bootstrap_at_points`, the same rows for every model), percentile bounds.
    Returns name -> {value_per_period (the recorded one), low, high}.

    Raises ValueError when the predictions are not worth what the evaluation recorded
    (stale predictions or another objective): the report would show two different numbers.
    """
    cases = case_values_at_points(model, y_true, predictions, points, amount)
    out = {}
    draws = bootstrap_at_points(cases, model.volume, n_resamples=n_resamples, seed=seed)
    tail = (1.0 - confidence) / 2.0
    for name, values in cases.items():
        here = float(values.mean() * model.volume)
        want = float(recorded[name])
        if abs(here - want) > 1e-6 * max(1.0, abs(want)) + 0.5:
            raise ValueError(
                f"{name}: its validation predictions are worth {here:,.0f} per period at its "
                f"operating point, the evaluation recorded {want:,.0f}"
            )
        low, high = np.quantile(draws[name], [tail, 1.0 - tail])
        out[name] = {"value_per_period": want, "low": float(low), "high": float(high)}
    return out


def metric_point_worth(
    model: ValueModel, y_true: Any, scores: Any, point: float, amount: Any | None = None
) -> dict[str, Any]:
    """What one percentage point of a metric is worth at the operating point (validation).

    Binary: one more point of recall catches 1% of the positives more (taken from those now
    missed, precision's false alarms unchanged); one more point of precision at the same
    recall means fewer false alarms (those cases are then left alone). Each moved case is
    worth the value model's difference between the two decisions for it, averaged over the
    cases that would move (so a per-amount objective weighs them by their amounts).
    Regression: every error beyond the tolerance one target unit smaller.
    Returns a record; money in currency per period.
    """
    return model.metric_point_worth(y_true, scores, point, amount)


def _segments_of(column: pd.Series) -> pd.Series:
    """A label per row: quartile ranges for numbers, levels for categories ("other" for the
    rare ones), "missing" for missing values."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.astype(float)
        present = values.dropna()
        if present.nunique() <= MAX_LEVELS:
            labels = values.map(lambda v: f"{v:g}" if v == v else "missing")
            return labels.astype(object)
        edges = np.unique(np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)))
        bins = pd.cut(values, edges, include_lowest=True, duplicates="drop")
        labels = [f"{a:g} to {b:g}" for a, b in pairwise(edges)]
        codes = bins.cat.codes.to_numpy()
        return pd.Series(
            [labels[c] if c >= 0 else "missing" for c in codes], index=column.index, dtype=object
        )
    text = column.astype(object).where(column.notna(), "missing").astype(str)
    keep = set(text.value_counts().index[:MAX_LEVELS])
    return text.where(text.isin(keep), "other")


def segment_values(
    model: ValueModel,
    features: pd.DataFrame,
    y_true: Any,
    scores: Any,
    point: float,
    amount: Any | None = None,
    max_features: int = 6,
    limit: int = 12,
) -> dict[str, Any]:
    """Where the model loses money: value by segment of the main features (validation).

    `features`: the validation rows' features (n rows); `scores` (n,), `point`: the final
    model's predictions and fixed operating point. Each feature's rows are split into
    segments (`_segments_of`); a segment's `value_per_period` is its share of the model's
    value per period (sum of its cases' values / n x volume, so segments add up to the
    total), `per_case` its mean value per case, `regret` what it loses against the best
    decision for each of its cases (binary; currency per period). The main features are
    those whose segments differ most in value per case. Segments with fewer rows than
    MIN_SEGMENT_SHARE / MIN_SEGMENT_ROWS are left out. Returns {"segments": the `limit`
    lowest-valued segments whose cases are worth less than the average case, largest
    losses first, "features": the main features,
    "per_case": the overall mean value per case, "rows": n}.
    """
    y = np.asarray(y_true, float)
    s = np.asarray(scores, float)
    amounts = None if amount is None else np.asarray(amount, float)
    n = len(y)
    values = model.case_values_at(y, s, point, amounts)
    regret = model.regret_at(y, s, point, amounts)  # None: no discrete decision (regression)
    min_rows = max(MIN_SEGMENT_ROWS, int(np.ceil(MIN_SEGMENT_SHARE * n)))
    per_feature: dict[str, list[dict[str, Any]]] = {}
    spread: dict[str, float] = {}
    for name in features.columns:
        labels = _segments_of(features[name].reset_index(drop=True)).to_numpy()
        rows = []
        for label in pd.unique(labels):
            mask = labels == label
            count = int(mask.sum())
            if count < min_rows:
                continue
            rows.append(
                {
                    "feature": name,
                    "segment": str(label),
                    "rows": count,
                    "share": count / n,
                    "per_case": float(values[mask].mean()),
                    "value_per_period": float(values[mask].sum() / n * model.volume),
                    "regret": None
                    if regret is None
                    else float(regret[mask].sum() / n * model.volume),
                }
            )
        if len(rows) >= 2:
            per_feature[name] = rows
            spread[name] = max(r["per_case"] for r in rows) - min(r["per_case"] for r in rows)
    # Ties broken by the feature order, so the choice is stable from run to run.
    order = sorted(spread, key=lambda f: (-round(spread[f], 6), list(features.columns).index(f)))
    main = order[:max_features]
    overall = float(values.mean()) if n else float("nan")
    # Only the segments whose cases are worth less than the average case: where errors
    # hide behind a good average.
    segments = [r for f in main for r in per_feature[f] if r["per_case"] < overall]
    segments.sort(key=lambda r: (r["value_per_period"], r["feature"], r["segment"]))
    return {
        "segments": segments[:limit],
        "features": main,
        "per_case": overall,
        "rows": n,
        "min_rows": min_rows,
    }


def constraint_region(
    model: ValueModel,
    y_true: Any,
    scores: Any,
    points: Any,
    constraints: list[Constraint],
    amount: Any | None = None,
) -> np.ndarray:
    """Whether every constraint holds at each of `points` (thresholds / offsets), shape (m,),
    on the validation rows (`metrics_at_point` of the value model)."""
    xs = np.asarray(points, float)
    if not constraints:
        return np.ones(len(xs), dtype=bool)
    out = np.empty(len(xs), dtype=bool)
    for i, x in enumerate(xs):
        metrics = model.metrics_at_point(y_true, scores, float(x), amount)
        out[i] = all(c.holds(metrics.get(c.metric, float("nan"))) for c in constraints)
    return out


def tuning_stop(trials: pd.DataFrame, min_improvement: float) -> dict[str, Any]:
    """Where a study stopped adding value: the last trial that raised the best
    cross-validated value by at least `min_improvement` (currency per period), counted as
    the tune stage's stop rule counts (`tuning.StopOnValue`: finished trials in trial
    order, a gain measured from the last such gain).

    `trials`: the tune stage's table (plots/tune/<candidate>.csv: trial, state,
    value_per_period, best_so_far). Returns {last_gain_trial, gain_value, best, trials,
    after}: `after` is how many finished trials followed it without such a gain.
    """
    table = trials.sort_values("trial")
    finished = table[table["state"].isin(["complete", "pruned"])]
    gain_value, last_trial, after = None, None, 0
    for trial, state, value in zip(
        finished["trial"], finished["state"], finished["value_per_period"], strict=True
    ):
        complete = state == "complete" and value == value
        if complete and (gain_value is None or value >= gain_value + min_improvement):
            gain_value, last_trial, after = float(value), int(trial), 0
        else:
            after += 1
    values = table["value_per_period"].dropna()
    return {
        "last_gain_trial": last_trial,
        "gain_value": gain_value,
        "best": float(values.max()) if len(values) else None,
        "trials": len(table),
        "after": after,
    }
