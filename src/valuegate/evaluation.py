"""Technical metrics and curves, always reported beside business value.

Pure functions on arrays: `y_true` is 0/1 (binary) or real (regression), shape (n,);
`scores` are probabilities of the positive class, shape (n,).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from valuegate.business import (
    ValueModel,
    regression_metrics,
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


# The technical metrics beside business value, by task (the value model's `task`): ranking
# and calibration of a probability, or the size of a regression's errors.
TECHNICAL_METRICS = {"binary": binary_metrics, "regression": regression_metrics}
# The technical curves (ROC, precision-recall, calibration) exist for scores only.
TECHNICAL_CURVES = {"binary": curves}


def meets(constraints: list[Constraint], values: dict[str, float]) -> bool:
    return all(c.holds(values.get(c.metric, float("nan"))) for c in constraints)


def _clean(value: Any) -> Any:
    """NaN (a metric undefined here: ROC AUC on one class, precision when nothing is
    flagged) -> None, so records hold JSON null, never NaN."""
    if isinstance(value, float) and value != value:
        return None
    return value


def in_sample_points(
    config: Config,
    model: ValueModel,
    y_true: np.ndarray,
    predictions: dict[str, np.ndarray],
    amount: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Operating points chosen on the rows given (optimistic: only for callers that have no
    out-of-fold point, e.g. a quick look; the pipeline passes each fit.json's point)."""
    out = {}
    for name, pred in predictions.items():
        point = model.choose_point(y_true, pred, amount, config.constraints)
        out[name] = {
            "kind": point.kind,
            "value": point.value,
            "acts": model.acts(pred, point.value),
            "constraints_met": point.constraints_met,
            "chosen_on": "the rows it is valued on (in-sample, optimistic)",
        }
    return out


def evaluate_predictions(
    config: Config,
    model: ValueModel,
    y_true: np.ndarray,
    predictions: np.ndarray,
    amount: np.ndarray | None = None,
    point: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Value one model at its fixed operating point (`point`: fit.json `operating_point`;
    None: chosen on these rows, in-sample); add technical metrics. A flat record."""
    if point is None:
        point = in_sample_points(config, model, y_true, {"m": predictions}, amount)["m"]
    at = float(point["value"])
    kind = model.point_kind
    technical = TECHNICAL_METRICS[model.task](
        np.asarray(y_true, float), np.asarray(predictions, float)
    )
    at_point = model.metrics_at_point(y_true, predictions, at, amount)
    record: dict[str, Any] = {
        "value_per_period": model.value_at_point(y_true, predictions, at, amount)
    }
    if point.get("acts"):
        record["acts"] = point["acts"]  # one score: acts on every case or none, no threshold
    else:
        record[kind] = at
    record[model.default_point_key] = model.value_at_point(
        y_true, predictions, model.default_point, amount
    )
    record["constraints_met"] = bool(point.get("constraints_met", True))
    record["constraints_met_here"] = meets(config.constraints, at_point)
    record.update(technical)
    record.update({f"{k}{model.point_metric_suffix}": v for k, v in at_point.items()})
    record["operating_point"] = {
        k: point[k]
        for k in ("chosen_on", "interval", "value_cost", "value_per_period", "rows")
        if k in point
    }
    return {k: _clean(v) for k, v in record.items()}


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
    """Value per period for offsets spanning the residuals' 1st to 99th percentile (the
    regression value model's `value_curve`)."""
    return model.value_curve(y_true, predictions, n_points=n_points)


def _downsample(columns: dict[str, np.ndarray], max_points: int = 400) -> dict[str, list]:
    n = len(next(iter(columns.values())))
    keep = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)) if n else []
    return {k: np.asarray(v)[keep].tolist() for k, v in columns.items()}


def _unit(config: Config) -> str:
    return f"{config.objective.currency}/{config.objective.period}"


def _money(value: float) -> str:
    return f"{round(value) + 0:,d}"  # never "-0"


def choose_final(
    config: Config, records: dict[str, dict[str, Any]], best_baseline: str
) -> tuple[str, list[str], str]:
    """Which model goes forward, the models it was picked from on validation, and why.

    `gate.final_model: gated` (default): the best baseline, unless a candidate passed the
    gate (`gate_passed`); then the most valuable passing candidate, each replaced by its
    tuned model when that is worth more on validation (rows tuning never saw).
    `most_valuable`: the most valuable of the baselines and the models allowed forward
    (tuned models when any, else the untuned candidates), preferring those meeting the
    constraints; a tie goes to the baseline.
    """
    unit = _unit(config)
    value = {n: r["value_per_period"] for n, r in records.items()}
    if config.gate.final_model == "most_valuable":
        tuned = [n for n, r in records.items() if r["role"] == "tuned"]
        forward = "tuned" if tuned else "candidate"
        pool = [n for n, r in records.items() if r["role"] in ("baseline", forward)]
        final = best_model(records, "baseline", forward)
        reason = (
            f"{final} ({records[final]['role']}) goes forward: the most valuable on validation "
            f"({_money(value[final])} {unit}) of {', '.join(pool)} (gate.final_model: "
            "most_valuable)"
        )
        return final, pool, reason
    passing = [n for n, r in records.items() if r["role"] == "candidate" and r.get("gate_passed")]
    if not passing:
        pool = [n for n, r in records.items() if r["role"] == "baseline"]
        best_candidate = [n for n, r in records.items() if r["role"] == "candidate"]
        rival = (
            f"; the best candidate {best_model(records, 'candidate')} earns "
            f"{_money(value[best_model(records, 'candidate')])} but did not pass the gate"
            if best_candidate
            else ""
        )
        reason = (
            f"{best_baseline} (baseline) goes forward: no candidate passed the gate, so the "
            f"best baseline does ({_money(value[best_baseline])} {unit} on validation{rival})"
        )
        return best_baseline, pool, reason
    pool, choices = [], []
    for name in passing:
        tuned = f"{name}_tuned"
        pool.append(name)
        pick = name
        if tuned in records:
            pool.append(tuned)
            # a tuned model that breaks the objective's constraints never replaces it
            if records[tuned].get("constraints_met", True) and value[tuned] > value[name]:
                pick = tuned
        choices.append(pick)
    final = max(choices, key=lambda n: value[n])
    base = final.removesuffix("_tuned") if records[final]["role"] == "tuned" else final
    if records[final]["role"] == "tuned":
        why = f"worth more on validation than the untuned {base} ({_money(value[base])})"
    elif f"{base}_tuned" in records:
        why = (
            f"its tuned model {base}_tuned is not worth more on validation "
            f"({_money(value[base + '_tuned'])}), so the untuned one stays"
        )
    else:
        why = "it passed the gate"
    reason = (
        f"{final} ({records[final]['role']}) goes forward: {_money(value[final])} {unit} on "
        f"validation, {why}; the best baseline {best_baseline} earns "
        f"{_money(value[best_baseline])}"
    )
    return final, pool, reason


def evaluate_models(
    config: Config,
    model: ValueModel,
    roles: dict[str, str],
    y_true: np.ndarray,
    predictions: dict[str, np.ndarray],
    amount: np.ndarray | None = None,
    *,
    points: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, list]]]]:
    """Value every model at its fixed operating point on the same rows; judge uplifts with
    the gate's bootstrap; pick the final model (`choose_final`).

    `roles[name]` is "baseline", "candidate" or "tuned"; `predictions[name]` has shape (n,);
    `points[name]` is the model's fit.json `operating_point` (chosen out of fold; None:
    chosen here, in-sample, and the records say so).

    Uplifts are over the best baseline (the most valuable at its point, preferring those
    meeting the constraints). One paired bootstrap (`gate.n_resamples`, seed `config.seed`)
    values every model at its point; the best baseline is re-picked in each resample. Each
    candidate gets the gate's verdict (`gate_passed`, Bonferroni over the candidates: the
    same numbers as the gate stage), each tuned model the same test over the tuned models;
    `uplift_matters` is that verdict, never the point estimate alone. The final model's
    interval (value and uplift) is Bonferroni-adjusted for the number of models it was
    picked from on these rows (`interval_adjusted_for`): the simultaneous intervals of all
    of them hold together at `gate.confidence`, so the one picked is covered too.
    Returns (summary record, plot data per plot kind per model).
    """
    from valuegate.gate import bootstrap_at_points, case_values_at_points, decide

    objective = config.objective
    if points is None:
        points = in_sample_points(config, model, y_true, predictions, amount)
    records: dict[str, dict[str, Any]] = {}
    plots: dict[str, dict[str, dict[str, list]]] = {}
    for name, scores in predictions.items():
        record = evaluate_predictions(config, model, y_true, scores, amount, points[name])
        good = meets(config.good_enough_metrics, record)
        target = objective.good_enough.value_per_period
        if target is not None:
            good = good and record["value_per_period"] >= target
        records[name] = {"role": roles[name], **record, "good_enough_met": good}
        plots.setdefault(f"value_{model.point_kind}", {})[name] = _downsample(
            model.value_curve(y_true, scores, amount)
        )
        if model.task in TECHNICAL_CURVES:
            for kind, columns in TECHNICAL_CURVES[model.task](y_true, scores).items():
                plots.setdefault(kind, {})[name] = _downsample(dict(columns))
    best_baseline = best_model(records, "baseline")
    baselines = [n for n, r in records.items() if r["role"] == "baseline"]
    pool = [n for n in baselines if records[n]["constraints_met"]] or baselines
    reference = records[best_baseline]["value_per_period"]
    fixed = {n: float(points[n]["value"]) for n in predictions}
    per_case = case_values_at_points(model, y_true, predictions, fixed, amount)
    samples = bootstrap_at_points(per_case, model.volume, config.gate.n_resamples, config.seed)
    best_per_resample = np.max(np.vstack([samples[n] for n in pool]), axis=0)
    for record in records.values():
        record["uplift"] = record["value_per_period"] - reference
        record["uplift_matters"] = False
    for role in ("candidate", "tuned"):
        group = [n for n, r in records.items() if r["role"] == role]
        for name in group:
            verdict = decide(
                name,
                best_baseline,
                samples[name] - best_per_resample,
                observed_uplift=records[name]["uplift"],
                min_uplift=objective.min_uplift,
                confidence=config.gate.confidence,
                n_compared=len(group),
                currency=objective.currency,
                period=objective.period,
            )
            passed = verdict.passed and records[name]["constraints_met"]
            records[name].update(
                uplift_ci_lower=verdict.ci_lower,
                uplift_ci_upper=verdict.ci_upper,
                uplift_matters=passed,
            )
            if role == "candidate":
                records[name]["gate_passed"] = passed
    candidates = [n for n, r in records.items() if r["role"] == "candidate"]
    best_candidate = best_model(records, "candidate") if candidates else None
    final, picked_from, final_reason = choose_final(config, records, best_baseline)
    k = max(1, len(picked_from))
    alpha = (1.0 - config.gate.confidence) / k
    value = records[final]["value_per_period"]
    uplift_samples = samples[final] - best_per_resample
    interval = {
        "value_ci_lower": min(value, float(np.quantile(samples[final], alpha))),
        "value_ci_upper": max(value, float(np.quantile(samples[final], 1.0 - alpha))),
        "uplift_ci_lower": min(records[final]["uplift"], float(np.quantile(uplift_samples, alpha))),
        "uplift_ci_upper": max(
            records[final]["uplift"], float(np.quantile(uplift_samples, 1.0 - alpha))
        ),
        "confidence": config.gate.confidence,
        "interval_adjusted_for": k,
        "interval_how": (
            f"paired bootstrap of the validation rows ({config.gate.n_resamples} resamples) at "
            f"fixed operating points, each bound one-sided at {config.gate.confidence:g} "
            f"Bonferroni-adjusted for the {k} model(s) the final one was picked from on these "
            "rows; the best baseline re-picked in each resample"
        ),
        "prob_uplift_positive": float(np.mean(uplift_samples > 0)),
        "picked_from": picked_from,
    }
    summary = {
        "split": "valid",
        "rows": len(y_true),
        "currency": objective.currency,
        "period": objective.period,
        "volume": objective.volume,
        "min_uplift": objective.min_uplift,
        "good_enough_value_per_period": objective.good_enough.value_per_period,
        "final_model_rule": config.gate.final_model,
        "best_baseline": best_baseline,
        "best_candidate": best_candidate,
        "best_uplift": records[best_candidate]["uplift"] if best_candidate else None,
        "best_candidate_passed": (
            records[best_candidate]["gate_passed"] if best_candidate else None
        ),
        "best_candidate_ci_lower": (
            records[best_candidate]["uplift_ci_lower"] if best_candidate else None
        ),
        "final_model": final,
        "final_reason": final_reason,
        "final_interval": interval,
        "models": records,
    }
    return summary, plots


LEAN_KEYS = (
    "value_per_period",
    "uplift",
    "uplift_ci_lower",
    "uplift_matters",
    "threshold",
    "acts",
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
    point: float | None = None,
) -> dict[str, Any]:
    """The final model on the test split, once, at its fixed operating point (`point`, the
    threshold / offset chosen out of fold; default: the one in `valid_record`), never
    re-chosen on test."""
    kind = model.point_kind
    at = float(valid_record[kind] if point is None else point)
    value = model.value_at_point(y_test, predictions, at, amount)
    # On test the metrics are those at the shipped point (for an offset they replace the
    # unshifted mae / rmse / r2: the predictions the business gets are the shifted ones).
    technical = TECHNICAL_METRICS[model.task](
        np.asarray(y_test, float), np.asarray(predictions, float)
    )
    technical.update(model.metrics_at_point(y_test, predictions, at, amount))
    record = {"split": "test", "rows": len(y_test), "value_per_period": value, kind: at}
    record.update(technical)
    return {k: _clean(v) for k, v in record.items()}


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
        # A metric undefined for a model (null in reports/evaluation.json) is left out:
        # DVC compares numbers, and NaN is not valid JSON.
        "models": {
            name: {k: record[k] for k in LEAN_KEYS if record.get(k) is not None}
            for name, record in summary["models"].items()
        },
    }
