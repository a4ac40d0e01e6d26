"""Step evaluate: every model valued on validation, the final model chosen and valued
once on test."""

from __future__ import annotations

from typing import Any

import pandas as pd

from valuegate.business import value_model
from valuegate.config.schema import Config
from valuegate.data import Schema, target_vector
from valuegate.pipeline.common import Scored, amounts


def evaluate(
    config: Config,
    schema: Schema,
    valid: pd.DataFrame,
    test: pd.DataFrame,
    models: Scored,
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, list]]]]:
    """Value every model (baselines, candidates, tuned) on the validation split at its
    fixed operating point, choose the final model (`gate.final_model`), value it once on
    test. Reads only the final model's test scores.

    Returns (the record reports/evaluation.json holds, without its lineage; the plot
    columns: kind -> model -> column -> values).
    """
    from valuegate.evaluation import evaluate_models, test_report

    model = value_model(config)
    summary, plots = evaluate_models(
        config,
        model,
        models.roles,
        target_vector(valid, config.data),
        models.on("valid"),
        amounts(valid, schema),
        points=models.points,
    )
    final = summary["final_model"]
    point = float(models.points[final]["value"])
    summary["final"] = {
        "model": final,
        "role": models.roles[final],
        # The operating point that ships (package reads final.valid.threshold / offset),
        # also for a model that acts on every case or none.
        "valid": {**summary["models"][final], model.point_kind: point, **summary["final_interval"]},
        "test": test_report(
            config,
            model,
            summary["models"][final],
            target_vector(test, config.data),
            models.scores(final, "test"),
            amounts(test, schema),
            point=point,
        ),
    }
    return summary, plots
