"""Step package: the deploy gate on the final model, against the champion when there is
one, and (when it passes) the new bundle's parts, in memory.

(config, the run's data and evaluation record, the final model, the champion's bundle or
None, the registry's budget ledger) -> `Packaged`: the deploy decision record, the ledger
to write BEFORE anything else when the comparison spent a look at the test rows, and the
bundle's parts (manifest, pipeline, check rows, extra files) to save. The `package` stage
(stages/package.py) reads files, calls this and writes the ledger, the bundle and the
champion pointer, in that order; retraining and backtests call it in memory. No file I/O
here, except reading the champion's row lineage from its bundle directory.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.pipeline.common import as_recorded

if TYPE_CHECKING:
    from valuegate.bundle import Bundle
    from valuegate.deploy import ChampionEvidence
    from valuegate.training import FittedModel


@dataclass
class FinalModel:
    """The model the evaluation picked, as the package step needs it.

    `info`: its fit.json (estimator, params, calibration, operating point); `scores`:
    "valid" and "test" -> calibrated scores (binary) or predictions, shape (rows of the
    split,); `predictions_sha256`: the digest of its predictions file (what the registry
    knows it by: a model already held is not packaged again); `source`: its model file,
    as the manifest records it."""

    name: str
    role: str
    pipeline: Any
    info: dict[str, Any]
    scores: dict[str, np.ndarray]
    predictions_sha256: str
    source: str


@dataclass
class BundleParts:
    """What `bundle.save_bundle(<registry>/<version>, pipeline, manifest, check, files)`
    writes."""

    version: str
    pipeline: Any
    manifest: dict[str, Any]
    check: pd.DataFrame
    files: dict[str, bytes]


@dataclass
class Packaged:
    """The step's outputs. `record`: reports/deploy.json without its lineage (the stage
    sets `version`, `hot_path` and `champion_after` once the bundle is written:
    `finish_record`); `ledger`: the budget ledger to write first (None: unchanged);
    `bundle`: None when nothing is packaged; `promote`: make it the champion once saved;
    `promote_held`: a version already in the registry to make the champion (a run that
    packaged it stopped before promoting it)."""

    record: dict[str, Any]
    ledger: dict[str, Any] | None
    bundle: BundleParts | None
    promote: bool
    promote_held: str | None = None


def predictions_digest(predictions: pd.DataFrame) -> str:
    """sha256 of the predictions table as the stages write it (Parquet, no index): the
    digest an in-memory model gets is the one its written predictions file has."""
    buffer = io.BytesIO()
    predictions.to_parquet(buffer, index=False)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def final_model(fitted: FittedModel, source: str) -> FinalModel:
    """A fitted model of an in-memory run as the package step reads it."""
    frame = fitted.predictions
    scores = {
        split: frame.loc[frame["split"] == split].sort_values("row")["score"].to_numpy()
        for split in ("valid", "test")
    }
    return FinalModel(
        fitted.name,
        fitted.info["role"],
        fitted.pipeline,
        # as its fit.json reads back (floats at 10 significant digits), as the stage has it
        as_recorded(fitted.info),
        scores,
        predictions_digest(frame),
        source,
    )


def seed_refits(
    config: Config, schema: Schema, splits: Mapping[str, pd.DataFrame], final: FinalModel
) -> Callable[[], list[dict[str, Any]]]:
    """deploy.seed_stability: the final model's spec refitted on the same rows with other
    seeds (seed + 1, seed + 2, ...; training.fit_model: its own out-of-fold calibration and
    operating point), called only when a champion comparison happens. Returns, per seed,
    {"seed", "scores" (test split, (n,)), "point"}."""

    def refit() -> list[dict[str, Any]]:
        from valuegate.training import fit_model

        role = final.role
        if role == "baseline":
            base = config.baseline[final.name]
        else:
            base = config.model[final.info.get("tuned_from", final.name)]
        spec = base.model_copy(update={"params": dict(final.info.get("params", base.params))})
        data = {s: splits[s] for s in ("train", "valid", "test")}
        out = []
        for k in range(1, config.deploy.seed_stability.seeds + 1):
            seeded = config.model_copy(update={"seed": config.seed + k})
            fitted = fit_model(final.name, role, spec, seeded, schema, data)
            test = fitted.predictions
            scores = test.loc[test["split"] == "test"].sort_values("row")["score"].to_numpy()
            point = float(as_recorded(fitted.info["operating_point"]["value"]))
            out.append({"seed": config.seed + k, "scores": scores, "point": point})
        return out

    return refit


def package(
    config: Config,
    schema: Schema,
    splits: Mapping[str, pd.DataFrame],
    evaluation: dict[str, Any],
    final: FinalModel,
    *,
    champion: Bundle | None = None,
    champion_name: str | None = None,
    ledger: dict[str, Any] | None = None,
    honest: dict[str, Any] | None = None,
    honest_note: str = "",
    held: str | None = None,
    held_unfinished: bool = False,
    next_version: str = "v1",
    git_revision: str | None = None,
) -> Packaged:
    """The deploy gate and the bundle's parts (see the module docstring).

    `splits`: "test" is always read; "train" and "valid" only when comparing with the
    champion or packaging (a lazy mapping keeps them unread otherwise). `evaluation`: the
    evaluate step's record (reports/evaluation.json; its `final` model, test figures and
    shipped operating point). `champion`: the registry's champion bundle (None: none, or
    not loaded because `held`); `champion_name`: the registry's champion version (default:
    the bundle's). `ledger`: the registry's budget ledger. `held`: the version that
    already holds this model (same predictions), which is then not packaged again;
    `held_unfinished`: that version was packaged to be promoted by a run that stopped
    before promoting it (`Registry.unfinished_promotion`): it is promoted now.
    """
    from valuegate.bundle import input_schema, validate_chunk
    from valuegate.business import value_model
    from valuegate.data import target_vector
    from valuegate.deploy import budget_attempt, deploy_decision, spend
    from valuegate.monitor.profile import PROFILE_FILE, profile_bytes, profile_from_splits
    from valuegate.row_lineage import lineage_record, to_npy
    from valuegate.serving.batch import score_frame

    if champion_name is None and champion is not None:
        champion_name = champion.version
    test = splits["test"]
    report = evaluation
    name = report["final"]["model"]
    test_record = report["final"]["test"]
    model = value_model(config)
    y_test = target_vector(test, config.data)
    amount = test[schema.amount_column].to_numpy(float) if schema.amount_column else None
    new_scores = final.scores["test"]
    # The operating point the new model ships with: chosen before test (contract C).
    new_point = float(report["final"]["valid"][model.point_kind])

    own: tuple[dict[str, Any], dict[str, Any]] | None = None

    def own_lineage() -> tuple[dict[str, Any], dict[str, Any]]:
        nonlocal own
        if own is None:
            split = {"config": config.data.split.model_dump(), "seed": config.seed}
            rows = {"train": splits["train"], "valid": splits["valid"], "test": test}
            own = lineage_record(rows, schema.id_column, schema.source_sha256, split)
        return own

    evidence = attempt = key = None
    incompatible = None
    if champion is not None and held is None:
        if champion.manifest.get("data", {}).get("name") != config.data.name or (
            champion.task != schema.task
        ):
            incompatible = (
                f"the champion {champion_name} serves data "
                f"{champion.manifest['data'].get('name')!r}, this run {config.data.name!r}; "
                "use another deploy.registry"
            )
        else:
            clean, _bad, errors = validate_chunk(test, champion.fields)
            if errors:
                incompatible = f"the champion {champion_name} rejects test rows: {errors[:3]}"
            else:
                champion_scores = score_frame(champion, clean)["score"].to_numpy()
                record_of_rows, seen = own_lineage()
                evidence = champion_evidence(
                    champion, test, champion_scores, record_of_rows["columns"], seen
                )
                key = {"model": name, "predictions_sha256": final.predictions_sha256,
                       "champion": champion_name}  # fmt: skip
                attempt = budget_attempt(
                    ledger or {"test_rows": {}},
                    record_of_rows["test_rows_fingerprint"],
                    key,
                    1.0 - config.deploy.confidence,
                    len(test),
                )

    refits = seed_refits(config, schema, splits, final) if evidence is not None else None
    record = deploy_decision(
        config, model, name, test_record, y_test, new_scores, amount, new_point,
        champion=evidence, attempt=attempt, honest=honest, seed_refits=refits,
    )  # fmt: skip
    record["champion"] = champion_name
    if "too_good" in record:
        record["too_good"]["honest_source"] = honest_note
    ledger_after = None
    if "versus_champion" in record and attempt is not None and key is not None:
        # Every comparison on these test rows is a look at them: the caller records it
        # before anything else can fail, so a crash after the look cannot give it back.
        ledger_after = spend(ledger or {"test_rows": {}}, attempt, key, record["promote"])
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
    if held is not None and held_unfinished and config.deploy.promote:
        record.update(
            packaged=False,
            promote=True,
            refused=False,
            already_packaged=held,
            reason=(
                f"{name} is already in the registry as {held}, packaged to be promoted by a "
                "run that stopped before promoting it: promoted now"
            ),
        )
        record["version"] = None
        return Packaged(record, None, None, False, promote_held=held)
    if held is not None and not record.get("refused"):
        what = (
            "the champion"
            if held == champion_name
            else f"the champion stays {champion_name}"
            if champion_name is not None
            else f"the registry has no champion: `valuegate models promote {held}`"
        )
        record.update(
            packaged=False,
            promote=False,
            already_packaged=held,
            reason=(
                f"{name} is already in the registry as {held} (same predictions; {what}): "
                "not packaged again"
            ),
        )
    record["version"] = None
    if not record["packaged"]:
        return Packaged(record, ledger_after, None, False)

    version = next_version
    lineage, seen = own_lineage()
    train = splits["train"]
    fields = input_schema(schema, train)
    manifest = {
        "version": version,
        "model": {
            "name": name,
            "role": final.role,
            "task": schema.task,
            "estimator": final.info.get("estimator"),
            "source": final.source,
            "predictions_sha256": final.predictions_sha256,
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
        "calibration": final.info.get("calibration", {"method": "none"}),
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
        "git_revision": git_revision,
    }
    check = validate_chunk(pd.concat([splits["valid"], test], ignore_index=True), fields)[0]
    files = {lineage["files"][which]: to_npy(rows) for which, rows in seen.items()}
    # what monitoring compares production with, so it never reloads training data
    files[PROFILE_FILE] = profile_bytes(profile_from_splits(
        fields, model, new_point, {"train": train, "valid": splits["valid"], "test": test},
        {"valid": final.scores["valid"], "test": new_scores}, config.data,
        schema.amount_column,
    ))  # fmt: skip
    parts = BundleParts(version, final.pipeline, manifest, check, files)
    return Packaged(record, ledger_after, parts, bool(record["promote"] and config.deploy.promote))


def finish_record(
    record: dict[str, Any], version: str | None, hot_path: str | None, champion_after: str | None
) -> dict[str, Any]:
    """The record once the bundle is written (or not): its version and scoring path, and
    the champion after the step."""
    if version is not None:
        record["version"] = version
        record["hot_path"] = hot_path
    record["champion_after"] = champion_after
    return record


def champion_evidence(
    bundle: Bundle,
    test: pd.DataFrame,
    scores: np.ndarray,
    new_columns: list[str],
    new_seen: dict[str, Any],
) -> ChampionEvidence:
    """The champion's scores (through its bundle, on `test`), its operating point and the
    test rows neither model has seen (`new_columns` / `new_seen`: the new model's row
    lineage); reads the champion's row sets from its bundle directory."""
    from valuegate.deploy import ChampionEvidence, fresh_rows
    from valuegate.row_lineage import read_rows, row_hashes

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
