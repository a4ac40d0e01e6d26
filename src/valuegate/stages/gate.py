"""Stage `gate`: may a candidate be tuned? Paired bootstrap of business value per period,
each candidate against the best baseline on the validation split, every model valued at the
operating point fixed out of fold when it was fitted (fit.json). The work is
`pipeline.steps.gate`.

Writes `reports/gate.json`, the decision record: every number compared, the confidence
interval, the verdict and a one-sentence reason per candidate; its numbers also go to
`metrics/gate.json` (DVC metrics: numbers only, so `dvc exp show` stays readable). When
nothing passes, the pipeline goes on with the best baseline (tuning is skipped, loudly;
`gate.final_model: most_valuable` sends the most valuable untuned model instead), unless
`gate.strict` is true: then the run fails after writing the record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from valuegate.config import load_params
from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.pipeline import steps
from valuegate.stages.common import (
    ASSESSED,
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

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.gate")


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


def write_gate(
    record: dict[str, Any], config: Config, root: Path = Path("."), schema: Schema | None = None
) -> None:
    """reports/gate.json (stamped with its lineage: contract B) and metrics/gate.json."""
    write_record(
        root / GATE_FILE, root / GATE_METRICS, stamp(record, config, root / ASSESSED, schema)
    )


def read_scored(config: Config, n_valid: int) -> steps.Scored:
    """The baselines' and candidates' validation scores and fixed operating points, from
    their files (lineage checked)."""
    roles, predictions = read_valid_predictions(config, n_valid)
    # Each model's threshold / offset was fixed out of fold when it was fitted (fit.json).
    points = read_operating_points(config, list(predictions))
    return steps.Scored(roles, points, lambda name, _split: predictions[name])


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    valid = read_splits(names=("valid",), columns=outcome_columns(config, schema))["valid"]
    record = steps.gate(config, schema, valid, read_scored(config, len(valid)))
    write_gate(record, config)
    log.info(banner(record))
    refusal = steps.gate_refusal(config, record)
    if refusal is not None:
        raise refusal


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
