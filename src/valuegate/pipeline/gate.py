"""Step gate: may a candidate be tuned? Paired bootstrap of value per period against the
best baseline on the validation split."""

from __future__ import annotations

from typing import Any

import pandas as pd

from valuegate.business import value_model
from valuegate.config.schema import Config
from valuegate.data import Schema, target_vector
from valuegate.errors import GateRefusedError
from valuegate.paths import GATE_RECORD
from valuegate.pipeline.common import Scored, amounts


def gate(config: Config, schema: Schema, valid: pd.DataFrame, models: Scored) -> dict[str, Any]:
    """The metric gate: each candidate against the best baseline on the validation split,
    paired bootstrap of value per period, every model at its fixed operating point.

    `valid` needs the target (and amount) columns only; `models` holds the baselines and
    candidates. Returns the decision record reports/gate.json holds (without its lineage):
    split, rows, confidence, strict, tuning_allowed, then gate.gate_candidates' record with
    each candidate's `good_enough_met`.
    """
    from valuegate.evaluation import evaluate_models
    from valuegate.gate import gate_candidates

    y = target_vector(valid, config.data)
    amount = amounts(valid, schema)
    predictions = models.on("valid")
    record = gate_candidates(
        value_model(config),
        y,
        predictions,
        models.roles,
        amount=amount,
        constraints=config.constraints,
        min_uplift=config.objective.min_uplift,
        confidence=config.gate.confidence,
        n_resamples=config.gate.n_resamples,
        seed=config.seed,
        currency=config.objective.currency,
        period=config.objective.period,
        points=models.points,
    )
    # Reported, not required to tune: is each candidate already worth deploying?
    valued, _plots = evaluate_models(
        config, value_model(config), models.roles, y, predictions, amount, points=models.points
    )
    for name, decision in record["candidates"].items():
        decision["good_enough_met"] = valued["models"][name]["good_enough_met"]
    return {
        "split": "valid",
        "rows": len(valid),
        "confidence": config.gate.confidence,
        "strict": config.gate.strict,
        "tuning_allowed": record["best_passing"] is not None,
        **record,
    }


def gate_refusal(config: Config, record: dict[str, Any]) -> GateRefusedError | None:
    """The error that stops the pipeline after the gate (gate.strict and nothing passed),
    or None when it goes on."""
    if config.gate.strict and not record["tuning_allowed"]:
        return GateRefusedError(
            "no candidate passed the gate and gate.strict is true; the decision record is in "
            f"{GATE_RECORD}. Set gate.strict=false to go on with the best baseline."
        )
    return None
