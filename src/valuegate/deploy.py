"""The deploy gate: package the final model only when it is good enough on test and, when
a champion exists, beats it in value per period on test (the tuning gate's paired
bootstrap and decision rule, `gate.paired_bootstrap_uplift` + `gate.decide`).

Pure: arrays and records in, a decision record out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from valuegate.business import BinaryValueModel, ValueModel
from valuegate.config.schema import Config
from valuegate.evaluation import meets
from valuegate.gate import decide, paired_bootstrap_uplift


def _best_value(model: ValueModel, y: np.ndarray, scores: np.ndarray, amount, constraints) -> float:
    if isinstance(model, BinaryValueModel):
        return model.choose_threshold(y, scores, amount, constraints).value_per_period
    return model.choose_offset(y, scores, constraints).value_per_period


def deploy_decision(
    config: Config,
    model: ValueModel,
    final: str,
    test_record: dict[str, Any],
    y_test: np.ndarray,
    new_scores: np.ndarray,
    amount: np.ndarray | None,
    champion: str | None = None,
    champion_scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """The deploy decision record. `test_record`: the final model's test figures at its
    validation operating point (reports/evaluation.json `final.test`)."""
    objective = config.objective
    unit = f"{objective.currency}/{objective.period}"
    target = objective.good_enough.value_per_period
    value = float(test_record["value_per_period"])
    value_ok = target is None or value >= target
    metrics_ok = meets(config.good_enough_metrics, test_record)
    record: dict[str, Any] = {
        "model": final,
        "test_value_per_period": value,
        "good_enough_value_per_period": target,
        "good_enough_metrics": list(objective.good_enough.metrics),
        "good_enough_met": bool(value_ok and metrics_ok),
        "champion": champion,
    }
    if not value_ok:
        record["packaged"] = False
        record["reason"] = (
            f"{final} is worth {value:,.0f} {unit} on the test split, below the "
            f"{target:,.0f} {unit} that objective.good_enough requires: not packaged"
        )
        return record
    if not metrics_ok:
        record["packaged"] = False
        record["reason"] = (
            f"{final} misses objective.good_enough.metrics {objective.good_enough.metrics} on "
            "the test split: not packaged"
        )
        return record
    if champion is None or champion_scores is None:
        record["packaged"] = True
        record["reason"] = (
            f"{final} is worth {value:,.0f} {unit} on test, meets objective.good_enough and "
            "the registry has no champion yet: packaged"
        )
        return record
    constraints = config.constraints
    uplifts = paired_bootstrap_uplift(
        model,
        y_test,
        new_scores,
        champion_scores,
        amount,
        constraints,
        n_resamples=config.deploy.n_resamples,
        seed=config.seed,
    )
    observed = _best_value(model, y_test, new_scores, amount, constraints) - _best_value(
        model, y_test, champion_scores, amount, constraints
    )
    verdict = decide(
        final,
        f"champion {champion}",
        uplifts,
        observed_uplift=observed,
        min_uplift=config.deploy.min_uplift,
        confidence=config.deploy.confidence,
        n_compared=1,
        currency=objective.currency,
        period=objective.period,
    )
    record["versus_champion"] = verdict.to_dict()
    record["packaged"] = verdict.passed
    verb = "packaged" if verdict.passed else "not packaged"
    record["reason"] = (
        f"{final} {'beats' if verdict.passed else 'does not beat'} champion {champion} on "
        f"test by enough: uplift {observed:,.0f} {unit}, "
        f"{verdict.confidence:.0%} lower bound {verdict.ci_lower:,.0f} "
        f"(needs >= {config.deploy.min_uplift:,.0f} and > 0): {verb}"
    )
    return record
