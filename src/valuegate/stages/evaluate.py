"""Stage `evaluate`: value every baseline, candidate and tuned model on the validation
split, then the final model once on the test split.

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

import pandas as pd

from valuegate.business import value_model
from valuegate.config import load_params
from valuegate.data import target_vector
from valuegate.evaluation import evaluate_models, lean_metrics, test_report
from valuegate.io import atomic_dir, atomic_write_json
from valuegate.report import summary_table
from valuegate.stages.common import (
    METRICS,
    PLOTS,
    REPORTS,
    check_data,
    metrics_view,
    outcome_columns,
    read_operating_points,
    read_predictions,
    read_splits,
    run_stage,
    stamp,
)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    splits = read_splits(names=("valid", "test"), columns=outcome_columns(config, schema))
    valid, test = splits["valid"], splits["test"]
    model = value_model(config)

    def amounts(frame: pd.DataFrame):
        return frame[schema.amount_column].to_numpy(float) if schema.amount_column else None

    y_valid = target_vector(valid, config.data)
    roles, predictions = read_predictions(config, "valid", len(valid))
    # Each model's threshold / offset was fixed out of fold when it was fitted (fit.json):
    # validation and test only value it.
    points = read_operating_points(config, list(predictions))
    summary, plots = evaluate_models(
        config, model, roles, y_valid, predictions, amounts(valid), points=points
    )

    final = summary["final_model"]
    _, test_scores = read_predictions(config, "test", len(test), names=[final])
    point = float(points[final]["value"])
    summary["final"] = {
        "model": final,
        "role": roles[final],
        # The operating point that ships (package reads final.valid.threshold / offset),
        # also for a model that acts on every case or none.
        "valid": {**summary["models"][final], model.point_kind: point, **summary["final_interval"]},
        "test": test_report(
            config,
            model,
            summary["models"][final],
            target_vector(test, config.data),
            test_scores[final],
            amounts(test),
            point=point,
        ),
    }
    atomic_write_json(REPORTS / "evaluation.json", stamp(summary, config))  # contract B
    # numbers only (metrics_view): the model names and sentences are in the report
    atomic_write_json(METRICS / "evaluate.json", metrics_view(lean_metrics(summary)) or {})
    with atomic_dir(PLOTS / "evaluate") as tmp:
        for kind, per_model in plots.items():
            (tmp / kind).mkdir()
            for name, columns in per_model.items():
                # 10 significant digits, like the JSON: threaded predictions (random
                # forest) differ in the last bit from run to run.
                pd.DataFrame(columns).to_csv(
                    tmp / kind / f"{name}.csv", index=False, float_format="%.10g"
                )
    print(summary_table(summary))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
