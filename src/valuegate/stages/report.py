"""Stage `report`: the business report of the run, `reports/run.html`.

Reads what the pipeline recorded (reports/evaluation.json, reports/assessment.json,
reports/gate.json, reports/tune.json, reports/deploy.json, plots/, every model's fit.json
and validation predictions, the registry) and writes one self-contained page
(`valuegate.run_report`). Each record is refused, in one line, when it was produced from
another config or data. The page holds no timing: it is a tracked output and must be the
same bytes on every run of the same inputs (`valuegate report --timings` measures them into
an untracked file).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.business import value_model
from valuegate.config import Config, load_params
from valuegate.data import target_vector
from valuegate.errors import ArtifactError
from valuegate.io import atomic_write_text
from valuegate.run_report import RunRecords, build_report
from valuegate.stages.common import (
    DATA_KEYS,
    MODEL_FILE,
    PLOTS,
    REPORTS,
    RERUN,
    check_data,
    check_lineage,
    model_dirs,
    read_fit_info,
    read_gate_record,
    read_predictions,
    read_splits,
    read_tune_record,
    record_keys,
    run_stage,
)

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.report")


OUTPUT = REPORTS / "run.html"
TIMED_OUTPUT = Path("logs") / "run-timed.html"


def _read_json(path: Path, required: bool = True) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise ArtifactError(f"{path} not found: run the pipeline first (`dvc repro`).")
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc}): {RERUN}.") from None


def _registry(config: Config) -> dict[str, Any]:
    """The registry's versions (`Registry.listing`) and its champion pointer's history."""
    from valuegate.registry import POINTER, Registry

    registry = Registry(config.deploy.registry)
    versions = []
    for row in registry.listing():
        value = row.get("test_value_per_period")
        versions.append(
            {
                "version": row["version"],
                "model": row.get("model", row.get("error", "")),
                "status": row["status"],
                "created": row.get("created") or "",
                "test_value_per_period": value,
            }
        )
    pointer = _read_json(registry.root / POINTER, required=False) or {}
    return {
        "champion": pointer.get("champion"),
        "history": list(pointer.get("history", [])),
        "versions": versions,
    }


def collect(config: Config, timed: bool = False) -> RunRecords:
    """The run's records, each checked against `config`'s lineage; `timed`: also measure
    every model's fit time, latency per row and parts (noise: never for the DVC output)."""
    schema = check_data(config)
    evaluation = _read_json(REPORTS / "evaluation.json")
    assert evaluation is not None
    check_lineage(evaluation, config, REPORTS / "evaluation.json", record_keys(config))
    gate = read_gate_record(config)
    tune = read_tune_record(config)
    deploy = _read_json(Path("reports/deploy.json"), required=False)
    if deploy is not None:
        keys = [*DATA_KEYS, "objective"]  # not all of `deploy`: serve/batch do not rerun package
        check_lineage(deploy, config, "reports/deploy.json", keys)
    assessment = _read_json(REPORTS / "assessment.json", required=False)

    valid = read_splits(names=("valid",))["valid"]
    names = list(evaluation["models"])
    _roles, predictions = read_predictions(config, "valid", len(valid), names=names)
    missing = [n for n in names if n not in predictions]
    if missing:
        raise ArtifactError(
            f"reports/evaluation.json values {missing}, which have no fitted model: {RERUN}."
        )
    dirs = model_dirs(config, tuned=True)
    fits = {name: read_fit_info(dirs[name][1]) for name in names}
    costs = {name: {"model_bytes": (dirs[name][1] / MODEL_FILE).stat().st_size} for name in names}

    trials = {}
    for name in (tune or {}).get("studies", {}):
        path = PLOTS / "tune" / f"{name}.csv"
        if path.is_file():
            trials[name] = pd.read_csv(path)
    final = evaluation["final_model"]
    kind = f"value_{value_model(config).point_kind}"
    curve_path = PLOTS / "evaluate" / kind / f"{final}.csv"
    curve = pd.read_csv(curve_path) if curve_path.is_file() else None
    amount = valid[schema.amount_column].to_numpy(float) if schema.amount_column else None

    if timed:
        from valuegate.artifacts import load_pipeline
        from valuegate.run_report.timings import measure

        train = read_splits(names=("train",))["train"]
        y_train = target_vector(train, config.data)
        for name in names:
            pipeline = load_pipeline(dirs[name][1] / MODEL_FILE)
            costs[name].update(
                measure(pipeline, train[schema.features], y_train, valid[schema.features])
            )
    return RunRecords(
        config=config,
        evaluation=evaluation,
        gate=gate,
        tune=tune,
        trials=trials,
        assessment=assessment,
        deploy=deploy,
        registry=_registry(config),
        y_valid=target_vector(valid, config.data),
        amount_valid=amount,
        features_valid=valid[schema.features],
        predictions=predictions,
        fits=fits,
        curve=curve,
        costs=costs,
        timed=timed,
    )


def write_report(config: Config, output: Path = OUTPUT, timed: bool = False) -> Path:
    """Collect the records, build the page and write it atomically to `output`."""
    page = build_report(collect(config, timed=timed))
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, page)
    return output


def main(argv: list[str]) -> None:
    config = load_params()
    path = write_report(config)
    log.info(f"report: wrote {path} ({path.stat().st_size / 1e3:,.0f} kB)")


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
