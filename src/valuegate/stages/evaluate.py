"""Stage `evaluate`: value every baseline, candidate and tuned model on the validation
split, then the final model once on the test split.

The final model is the best tuned model or, when the gate allowed no tuning, the best
untuned candidate. Its uplift over the best baseline carries a paired-bootstrap confidence
interval on validation (the gate's method, at `gate.confidence`); on test it is valued at
the operating point chosen on validation.

Writes `metrics/evaluate.json` (DVC metrics: value per period, uplift, operating point and
technical metrics per model; the final model's figures), `reports/evaluation.json` (the
full record) and `plots/evaluate/<kind>/<model>.csv` (value vs. threshold, ROC, PR,
calibration).
"""

from __future__ import annotations

import pandas as pd

from valuegate.business import value_model
from valuegate.config import load_params
from valuegate.data import target_vector
from valuegate.evaluation import evaluate_models, lean_metrics, test_report
from valuegate.gate import decide, paired_bootstrap_uplift
from valuegate.io import atomic_dir, atomic_write_json
from valuegate.report import summary_table
from valuegate.stages.common import (
    METRICS,
    PLOTS,
    REPORTS,
    outcome_columns,
    read_predictions,
    read_schema,
    read_splits,
    run_stage,
)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = read_schema()
    splits = read_splits(names=("valid", "test"), columns=outcome_columns(config, schema))
    valid, test = splits["valid"], splits["test"]
    model = value_model(config)

    def amounts(frame: pd.DataFrame):
        return frame[schema.amount_column].to_numpy(float) if schema.amount_column else None

    y_valid = target_vector(valid, config.data)
    roles, predictions = read_predictions(config, "valid", len(valid))
    summary, plots = evaluate_models(config, model, roles, y_valid, predictions, amounts(valid))

    final = summary["final_model"]
    baseline = summary["best_baseline"]
    uplifts = paired_bootstrap_uplift(
        model,
        y_valid,
        predictions[final],
        predictions[baseline],
        amounts(valid),
        config.constraints,
        n_resamples=config.gate.n_resamples,
        seed=config.seed,
    )
    interval = decide(
        final,
        baseline,
        uplifts,
        observed_uplift=summary["models"][final]["uplift"],
        min_uplift=config.objective.min_uplift,
        confidence=config.gate.confidence,
        n_compared=1,
        currency=config.objective.currency,
        period=config.objective.period,
    )
    _, test_scores = read_predictions(config, "test", len(test), names=[final])
    summary["final"] = {
        "model": final,
        "role": roles[final],
        "valid": {
            **summary["models"][final],
            "uplift_ci_lower": interval.ci_lower,
            "uplift_ci_upper": interval.ci_upper,
            "confidence": config.gate.confidence,
            "prob_uplift_positive": interval.prob_positive,
        },
        "test": test_report(
            config,
            model,
            summary["models"][final],
            target_vector(test, config.data),
            test_scores[final],
            amounts(test),
        ),
    }
    atomic_write_json(REPORTS / "evaluation.json", summary)
    atomic_write_json(METRICS / "evaluate.json", lean_metrics(summary))
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
