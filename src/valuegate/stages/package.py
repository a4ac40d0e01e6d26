"""Stage `package`: the deploy gate, then (if it passes) a bundle in the registry.

Reads reports/evaluation.json (the final model, its shipped operating point and test
figures), reports/assessment.json (the honest estimate, for the too-good guard), the final
model's pipeline and the splits; compares with the registry's champion when one exists, on
the test rows neither has seen (row_lineage.py), spending the test rows' budget (the registry's
budget.json). Writes reports/deploy.json (every number and a one-sentence reason; its
numbers also to metrics/deploy.json, the DVC metrics) and, when
the model passes, models/registry/vN with its row lineage (promoted to champion when the
gate allows and deploy.promote).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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
from valuegate.deploy import (
    ChampionEvidence,
    budget_attempt,
    deploy_decision,
    fresh_rows,
    spend,
)
from valuegate.errors import ArtifactError, GateRefusedError
from valuegate.monitor.profile import PROFILE_FILE, profile_bytes, profile_from_splits
from valuegate.paths import ASSESS_RECORD, DEPLOY_METRICS, DEPLOY_RECORD, EVALUATE_RECORD
from valuegate.registry import Registry
from valuegate.row_lineage import lineage_record, read_rows, row_hashes, to_npy
from valuegate.serving.batch import score_frame
from valuegate.stages.common import (
    MODEL_FILE,
    PREDICTIONS_FILE,
    check_data,
    check_lineage,
    model_dirs,
    read_predictions,
    read_splits,
    record_keys,
    run_stage,
    stamp,
    write_record,
)

DEPLOY_FILE = DEPLOY_RECORD  # the full record; its numbers: DEPLOY_METRICS
ASSESSMENT_FILE = ASSESS_RECORD

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.package")


def read_honest_estimate(path: Path = ASSESSMENT_FILE) -> tuple[dict[str, Any] | None, str]:
    """(the assessment's honest estimate or None, a note saying where it came from or why
    there is none). Read defensively: without it only the configured ceiling applies."""
    if not path.is_file():
        return None, f"{path} not found: only the deploy.too_good ceiling applies"
    try:
        estimate = json.loads(path.read_text()).get("honest_estimate")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None, f"{path} is not a JSON object: only the deploy.too_good ceiling applies"
    if not isinstance(estimate, dict) or not isinstance(estimate.get("value"), int | float):
        return None, f"{path} holds no honest_estimate: only the deploy.too_good ceiling applies"
    return estimate, f"{path} honest_estimate ({estimate.get('how', 'cross-validated')})"


def champion_evidence(
    bundle: Any,
    test: pd.DataFrame,
    scores: Any,
    new_columns: list[str],
    new_seen: dict[str, Any],
) -> ChampionEvidence:
    """The champion's scores, operating point and the test rows neither model has seen."""
    lineage = bundle.manifest.get("row_lineage")
    point = bundle.operating_point[1]
    name = bundle.version
    if not isinstance(lineage, dict):
        note = (
            f"the champion {name} records no training rows (bundled before valuegate kept "
            "row lineage), so no test row is known to be unseen by it"
        )
        return ChampionEvidence(name, scores, point, None, {"note": note})
    columns = list(lineage.get("columns", []))
    lacking = [c for c in columns if c not in test.columns]
    if lacking:
        note = (
            f"the champion {name} identifies rows by {columns}, and this test split lacks "
            f"{lacking}, so no test row is known to be unseen by it"
        )
        return ChampionEvidence(name, scores, point, None, {"note": note})
    champion_seen = {which: read_rows(bundle.path, bundle.manifest, which) for which in new_seen}
    fresh, counts = fresh_rows(
        row_hashes(test, columns), champion_seen, row_hashes(test, new_columns), new_seen
    )
    counts.update(
        by=lineage.get("by"),
        champion_split_fingerprint=lineage.get("split_fingerprint"),
        champion_data_sha256=lineage.get("data_sha256"),
    )
    return ChampionEvidence(name, scores, point, fresh, counts)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    test = read_splits(names=("test",))["test"]
    report_path = EVALUATE_RECORD
    if not report_path.is_file():
        raise ArtifactError(f"{report_path} not found: run the evaluate stage first.")
    report = json.loads(report_path.read_text())
    check_lineage(report, config, report_path, record_keys(config))  # contract B
    final = report["final"]["model"]
    role, directory = model_dirs(config)[final]
    test_record = report["final"]["test"]
    model = value_model(config)
    y_test = target_vector(test, config.data)
    amount = test[schema.amount_column].to_numpy(float) if schema.amount_column else None
    _, scores = read_predictions(config, "test", len(test), names=[final])
    new_scores = scores[final]
    # The operating point the new model ships with: chosen before test (contract C).
    new_point = float(report["final"]["valid"][model.point_kind])
    honest, honest_note = read_honest_estimate()

    registry = Registry(config.deploy.registry)
    registry.ensure()
    champion = registry.champion
    # A model already in the registry is not packaged (nor compared) again: after
    # `valuegate models promote/rollback` DVC sees the registry changed and reruns this
    # stage, which must not re-package (and re-promote) the model the user just rolled back
    # from, nor spend the test rows' budget on a look it has already had.
    predictions_sha256 = sha256_file(directory / PREDICTIONS_FILE)
    held = registry.holding(final, predictions_sha256)

    splits: dict[str, pd.DataFrame] = {}  # train and valid: only to compare or package
    own: tuple[dict[str, Any], dict[str, Any]] | None = None

    def own_lineage() -> tuple[dict[str, Any], dict[str, Any]]:
        nonlocal own
        if own is None:
            splits.update(read_splits(names=("train", "valid")))
            split = {"config": config.data.split.model_dump(), "seed": config.seed}
            own = lineage_record(
                {**splits, "test": test}, schema.id_column, schema.source_sha256, split
            )
            log.info("row lineage: %s rows by %s", own[0]["rows"], own[0]["by"])
        return own

    evidence = attempt = key = None
    incompatible = None
    if champion is not None and held is None:
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
                record_of_rows, seen = own_lineage()
                evidence = champion_evidence(
                    bundle, test, champion_scores, record_of_rows["columns"], seen
                )
                key = {"model": final, "predictions_sha256": predictions_sha256,
                       "champion": champion}  # fmt: skip
                attempt = budget_attempt(
                    registry.budget(),
                    record_of_rows["test_rows_fingerprint"],
                    key,
                    1.0 - config.deploy.confidence,
                    len(test),
                )

    record = deploy_decision(
        config, model, final, test_record, y_test, new_scores, amount, new_point,
        champion=evidence, attempt=attempt, honest=honest,
    )  # fmt: skip
    record["champion"] = champion
    if "too_good" in record:
        record["too_good"]["honest_source"] = honest_note
    if "versus_champion" in record and attempt is not None and key is not None:
        # Every comparison on these test rows is a look at them: record it before anything
        # else can fail, so a crash after the look cannot give it back.
        registry.write_budget(spend(registry.budget(), attempt, key, record["promote"]))
    elif attempt is not None:  # no look taken: say what is left all the same
        spent = attempt["spent"] - (0.0 if attempt["repeat"] else attempt["alpha"])
        record["budget"] = {
            "test_rows_fingerprint": attempt["test_rows_fingerprint"],
            "attempt": None,
            "spent": spent,
            "left": max(0.0, attempt["budget"] - spent),
            "budget": attempt["budget"],
        }
    if incompatible:
        record.update(
            packaged=False, promote=False, refused=True, reason=f"{incompatible}: not packaged"
        )
    if held is not None and not record.get("refused"):
        what = (
            "the champion"
            if held == champion
            else f"the champion stays {champion}"
            if champion is not None
            else f"the registry has no champion: `valuegate models promote {held}`"
        )
        record.update(
            packaged=False,
            promote=False,
            already_packaged=held,
            reason=(
                f"{final} is already in the registry as {held} (same predictions; {what}): "
                "not packaged again"
            ),
        )
    record["version"] = None
    if record["packaged"]:
        version = registry.next_version()
        lineage, seen = own_lineage()
        train = splits["train"]
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
                "kind": model.point_kind,
                "value": new_point,
                "action": config.objective.decision,
                "chosen_on": report["final"]["valid"]
                .get("operating_point", {})
                .get("chosen_on", "valid"),
            },
            # contract C: the score the threshold applies to is the calibrated one
            "calibration": json.loads((directory / "fit.json").read_text()).get(
                "calibration", {"method": "none"}
            ),
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
            # the rows the model has seen (train_rows.npy, valid_rows.npy): the next
            # deploy gate compares with this model only on rows outside them
            "row_lineage": lineage,
            "git_revision": git_revision(),
        }
        check = validate_chunk(pd.concat([splits["valid"], test], ignore_index=True), fields)[0]
        pipeline = load_pipeline(directory / MODEL_FILE)
        files = {lineage["files"][which]: to_npy(rows) for which, rows in seen.items()}
        # what monitoring compares production with, so it never reloads training data
        valid_scores = read_predictions(config, "valid", len(splits["valid"]), names=[final])
        files[PROFILE_FILE] = profile_bytes(profile_from_splits(
            fields, model, new_point, {**splits, "test": test},
            {"valid": valid_scores[1][final], "test": new_scores}, config.data,
            schema.amount_column,
        ))  # fmt: skip
        written = save_bundle(
            Path(config.deploy.registry) / version, pipeline, manifest, check, files
        )
        record["version"] = version
        record["hot_path"] = written["scoring"]["hot_path"]
        if record["promote"] and config.deploy.promote:
            registry.promote(version)
        record["champion_after"] = registry.champion
    else:
        record["champion_after"] = champion
    write_record(DEPLOY_FILE, DEPLOY_METRICS, stamp(record, config))  # lineage: contract B
    log.info(f"deploy gate: {record['reason']}")
    if record["packaged"]:
        log.info(
            f"packaged {record['version']} ({record['hot_path']}); "
            f"champion: {record['champion_after']}"
        )
    if record.get("refused") and config.deploy.strict:
        raise GateRefusedError(record["reason"])


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
