"""Stage `evaluate`: value every baseline, candidate and tuned model on the validation
split, then the final model once on the test split. The work is `pipeline.steps.evaluate`.

Every model is valued at the operating point fixed out of fold when it was fitted
(fit.json). The final model follows `gate.final_model` (`evaluation.choose_final`): by
default the best baseline, unless a candidate passed the gate (then that candidate, or its
tuned model when that is worth more on validation). Its value and uplift carry a
paired-bootstrap interval on validation, Bonferroni-adjusted for the models it was picked
from; on test it is valued once, at the same fixed operating point.

Writes `metrics/evaluate.json` (DVC metrics, numbers only: value per period, uplift,
operating point and technical metrics per model; the final model's figures),
`reports/evaluation.json` (the full record) and `plots/evaluate/<kind>/<model>.csv`
(value vs. threshold, ROC, PR, calibration).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.config import load_params
from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.evaluation import lean_metrics
from valuegate.io import atomic_dir, atomic_write_json
from valuegate.paths import EVALUATE_METRICS, EVALUATE_PLOTS, EVALUATE_RECORD
from valuegate.pipeline import steps
from valuegate.plots import CURVES_FILE, curves_table
from valuegate.report import summary_table
from valuegate.stages.common import (
    ASSESSED,
    check_data,
    metrics_view,
    outcome_columns,
    read_operating_points,
    read_predictions,
    read_splits,
    run_stage,
    stamp,
)

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.evaluate")


def write_evaluation(
    summary: dict[str, Any],
    plots: dict[str, Any],
    config: Config,
    root: Path = Path("."),
    schema: Schema | None = None,
) -> None:
    """reports/evaluation.json (stamped: contract B), metrics/evaluate.json (numbers only:
    the model names and sentences are in the report) and plots/evaluate/<kind>/<model>.csv."""
    atomic_write_json(root / EVALUATE_RECORD, stamp(summary, config, root / ASSESSED, schema))
    atomic_write_json(root / EVALUATE_METRICS, metrics_view(lean_metrics(summary)) or {})
    with atomic_dir(root / EVALUATE_PLOTS) as tmp:
        for kind, per_model in plots.items():
            (tmp / kind).mkdir()
            for name, columns in per_model.items():
                # 10 significant digits, like the JSON: threaded predictions (random
                # forest) differ in the last bit from run to run.
                pd.DataFrame(columns).to_csv(
                    tmp / kind / f"{name}.csv", index=False, float_format="%.10g"
                )
        # every model in one long table: what dvc.yaml's `plots:` draws (valuegate.plots)
        unit = f"{config.objective.currency}/{config.objective.period}"
        curves_table(plots, unit).to_csv(tmp / CURVES_FILE, index=False, float_format="%.10g")


def read_scored(config: Config, n_rows: dict[str, int]) -> steps.Scored:
    """Every model's validation scores and fixed operating points from their files
    (lineage checked); test scores are read for the one model asked for (the final)."""
    roles, predictions = read_predictions(config, "valid", n_rows["valid"])
    # Each model's threshold / offset was fixed out of fold when it was fitted (fit.json):
    # validation and test only value it.
    points = read_operating_points(config, list(predictions))

    def scores(name: str, split: str):
        if split == "valid":
            return predictions[name]
        return read_predictions(config, split, n_rows[split], names=[name])[1][name]

    return steps.Scored(roles, points, scores)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    splits = read_splits(names=("valid", "test"), columns=outcome_columns(config, schema))
    valid, test = splits["valid"], splits["test"]
    models = read_scored(config, {"valid": len(valid), "test": len(test)})
    summary, plots = steps.evaluate(config, schema, valid, test, models)
    write_evaluation(summary, plots, config)
    log.info(summary_table(summary))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
