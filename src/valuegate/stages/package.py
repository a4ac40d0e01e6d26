"""Stage `package`: the deploy gate, then (if it passes) a bundle in the registry.

Reads reports/evaluation.json (the final model, its validation threshold and test figures),
the final model's pipeline and the test split; compares with the registry's champion when
one exists. Writes metrics/deploy.json (every number and a one-sentence reason) and, when
the model passes, models/registry/vN (promoted to champion when deploy.promote).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from valuegate.artifacts import load_pipeline
from valuegate.bundle import (
    git_revision,
    input_schema,
    save_bundle,
    sha256_file,
    validate_chunk,
)
from valuegate.business import value_model
from valuegate.config import load_params
from valuegate.data import target_vector
from valuegate.deploy import deploy_decision
from valuegate.errors import ArtifactError, GateRefusedError
from valuegate.io import atomic_write_json
from valuegate.registry import Registry
from valuegate.serving.batch import score_frame
from valuegate.stages.common import (
    METRICS,
    MODEL_FILE,
    PREDICTIONS_FILE,
    REPORTS,
    model_dirs,
    read_predictions,
    read_schema,
    read_splits,
    run_stage,
)

DEPLOY_FILE = METRICS / "deploy.json"


def main(argv: list[str]) -> None:
    config = load_params()
    schema = read_schema()
    test = read_splits(names=("test",))["test"]  # train and valid only when packaging
    report_path = REPORTS / "evaluation.json"
    if not report_path.is_file():
        raise ArtifactError(f"{report_path} not found: run the evaluate stage first.")
    report = json.loads(report_path.read_text())
    final = report["final"]["model"]
    role, directory = model_dirs(config)[final]
    test_record = report["final"]["test"]
    model = value_model(config)
    y_test = target_vector(test, config.data)
    amount = test[schema.amount_column].to_numpy(float) if schema.amount_column else None
    _, scores = read_predictions(config, "test", len(test), names=[final])
    new_scores = scores[final]

    registry = Registry(config.deploy.registry)
    registry.ensure()
    champion = registry.champion
    champion_scores = None
    incompatible = None
    if champion is not None:
        bundle = registry.load("champion")
        if bundle.manifest.get("data", {}).get("name") != config.data.name or (
            bundle.task != schema.task
        ):
            incompatible = (
                f"the champion {champion} serves data {bundle.manifest['data'].get('name')!r}, "
                f"this run {config.data.name!r}; use another deploy.registry"
            )
        else:
            clean, _bad, errors = validate_chunk(test, bundle.fields)
            if errors:
                incompatible = f"the champion {champion} rejects test rows: {errors[:3]}"
            else:
                champion_scores = score_frame(bundle, clean)["score"].to_numpy()

    record = deploy_decision(
        config, model, final, test_record, y_test, new_scores, amount, champion, champion_scores
    )
    if incompatible:
        record.update(packaged=False, reason=f"{incompatible}: not packaged")
    # A model already in the registry is not packaged again: after `valuegate models
    # promote/rollback` DVC sees the registry changed and reruns this stage, which must not
    # re-package (and re-promote) the model the user just rolled back from.
    predictions_sha256 = sha256_file(directory / PREDICTIONS_FILE)
    held = registry.holding(final, predictions_sha256)
    if held is not None and record["good_enough_met"]:
        what = "the champion" if held == champion else f"the champion stays {champion}"
        record.update(
            packaged=False,
            already_packaged=held,
            reason=(
                f"{final} is already in the registry as {held} (same predictions; {what}): "
                "not packaged again"
            ),
        )
    record["version"] = None
    if record["packaged"]:
        version = registry.next_version()
        splits = read_splits(names=("train", "valid"))
        train = splits["train"]
        kind = "threshold" if schema.task == "binary" else "offset"
        fields = input_schema(schema, train)
        manifest = {
            "version": version,
            "model": {
                "name": final,
                "role": role,
                "task": schema.task,
                "estimator": json.loads((directory / "fit.json").read_text()).get("estimator")
                if (directory / "fit.json").is_file()
                else None,
                "source": str(directory / MODEL_FILE),
                "predictions_sha256": predictions_sha256,
            },
            "input": {
                "fields": fields,
                "amount_column": schema.amount_column,
                "id_column": schema.id_column,
            },
            "decision": {
                "kind": kind,
                "value": report["final"]["valid"][kind],
                "action": config.objective.decision,
                "chosen_on": "valid",
            },
            "objective": config.objective.model_dump(),
            "figures": {"valid": report["final"]["valid"], "test": test_record},
            "deploy_gate": record,
            "config": config.model_dump(),
            "data": {
                "name": config.data.name,
                "source_sha256": schema.source_sha256,
                "rows": schema.rows,
                "target": schema.target,
                "positive_label": schema.positive_label,
            },
            "git_revision": git_revision(),
        }
        check = validate_chunk(pd.concat([splits["valid"], test], ignore_index=True), fields)[0]
        pipeline = load_pipeline(directory / MODEL_FILE)
        written = save_bundle(Path(config.deploy.registry) / version, pipeline, manifest, check)
        record["version"] = version
        record["hot_path"] = written["scoring"]["hot_path"]
        if config.deploy.promote:
            registry.promote(version)
        record["champion_after"] = registry.champion
    else:
        record["champion_after"] = champion
    atomic_write_json(DEPLOY_FILE, record)
    print(f"deploy gate: {record['reason']}")
    if record["packaged"]:
        print(
            f"packaged {record['version']} ({record['hot_path']}); "
            f"champion: {record['champion_after']}"
        )
    elif config.deploy.strict:
        raise GateRefusedError(record["reason"])


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
