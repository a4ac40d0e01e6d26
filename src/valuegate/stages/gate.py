"""Stage `gate`: may a candidate be tuned? Paired bootstrap of business value per period,
each candidate against the best baseline on the validation split, every model valued at the
operating point fixed out of fold when it was fitted (fit.json).

Writes `reports/gate.json`, the decision record: every number compared, the confidence
interval, the verdict and a one-sentence reason per candidate; its numbers also go to
`metrics/gate.json` (DVC metrics: numbers only, so `dvc exp show` stays readable). When
nothing passes, the pipeline goes on with the best baseline (tuning is skipped, loudly;
`gate.final_model: most_valuable` sends the most valuable untuned model instead), unless
`gate.strict` is true: then the run fails after writing the record.
"""

from __future__ import annotations

from typing import Any

from valuegate.business import value_model
from valuegate.config import load_params
from valuegate.data import target_vector
from valuegate.errors import GateRefusedError
from valuegate.evaluation import evaluate_models
from valuegate.gate import gate_candidates
from valuegate.stages.common import (
    GATE_FILE,
    GATE_METRICS,
    check_data,
    outcome_columns,
    read_operating_points,
    read_splits,
    read_valid_predictions,
    run_stage,
    stamp,
    write_record,
)


def banner(record: dict[str, Any]) -> str:
    lines = [f"gate: {line['reason']}" for line in record["candidates"].values()]
    if record["best_passing"]:
        lines.append(f"gate: PASSED — {record['best_passing']} may be tuned.")
    else:
        rule = "=" * 78
        lines += [
            rule,
            "gate: NO CANDIDATE PASSED — tuning is skipped; with gate.final_model: gated "
            "(the default) the best baseline goes forward.",
            rule,
        ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    valid = read_splits(names=("valid",), columns=outcome_columns(config, schema))["valid"]
    amount = valid[schema.amount_column].to_numpy(float) if schema.amount_column else None
    roles, predictions = read_valid_predictions(config, len(valid))
    # Each model's threshold / offset was fixed out of fold when it was fitted (fit.json).
    points = read_operating_points(config, list(predictions))
    record = gate_candidates(
        value_model(config),
        target_vector(valid, config.data),
        predictions,
        roles,
        amount=amount,
        constraints=config.constraints,
        min_uplift=config.objective.min_uplift,
        confidence=config.gate.confidence,
        n_resamples=config.gate.n_resamples,
        seed=config.seed,
        currency=config.objective.currency,
        period=config.objective.period,
        points=points,
    )
    # Reported, not required to tune: is each candidate already worth deploying?
    valued, _plots = evaluate_models(
        config,
        value_model(config),
        roles,
        target_vector(valid, config.data),
        predictions,
        amount,
        points=points,
    )
    for name, decision in record["candidates"].items():
        decision["good_enough_met"] = valued["models"][name]["good_enough_met"]
    record = {
        "split": "valid",
        "rows": len(valid),
        "confidence": config.gate.confidence,
        "strict": config.gate.strict,
        "tuning_allowed": record["best_passing"] is not None,
        **record,
    }
    write_record(GATE_FILE, GATE_METRICS, stamp(record, config))  # lineage: contract B
    print(banner(record))
    if config.gate.strict and not record["tuning_allowed"]:
        raise GateRefusedError(
            "no candidate passed the gate and gate.strict is true; the decision record is in "
            f"{GATE_FILE}. Set gate.strict=false to go on with the best baseline."
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
