"""Stage `package`: the deploy gate, then (if it passes) a bundle in the registry. The
work is `pipeline.steps.package` (pipeline/package.py); this module reads its inputs and
writes the budget ledger, the bundle, the champion pointer and the record, in that order.

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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.artifacts import load_pipeline
from valuegate.bundle import git_revision, sha256_file
from valuegate.config import load_params
from valuegate.errors import ArtifactError, GateRefusedError
from valuegate.paths import ASSESS_RECORD, DEPLOY_METRICS, DEPLOY_RECORD, EVALUATE_RECORD
from valuegate.pipeline import steps
from valuegate.pipeline.package import FinalModel, finish_record
from valuegate.registry import Registry
from valuegate.stages.common import (
    INFO_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
    SPLITS,
    check_data,
    check_lineage,
    model_dirs,
    read_fit_info,
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


class _LazySplits(Mapping[str, pd.DataFrame]):
    """The splits, each read from data/assessed the first time the step asks for it (train
    and valid are read only to compare with the champion or to package)."""

    def __init__(self, test: pd.DataFrame) -> None:
        self._frames = {"test": test}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            if name not in SPLITS:
                raise KeyError(name)
            self._frames[name] = read_splits(names=(name,))[name]
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(SPLITS)

    def __len__(self) -> int:
        return len(SPLITS)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    test = read_splits(names=("test",))["test"]
    report_path = EVALUATE_RECORD
    if not report_path.is_file():
        raise ArtifactError(f"{report_path} not found: run the evaluate stage first.")
    report = json.loads(report_path.read_text())
    check_lineage(report, config, report_path, record_keys(config))  # contract B
    name = report["final"]["model"]
    role, directory = model_dirs(config)[name]
    _, test_scores = read_predictions(config, "test", len(test), names=[name])
    _, valid_scores = read_predictions(config, "valid", schema.rows["valid"], names=[name])
    final = FinalModel(
        name=name,
        role=role,
        pipeline=_Deferred(lambda: load_pipeline(directory / MODEL_FILE)),
        info=read_fit_info(directory) if (directory / INFO_FILE).is_file() else {},
        scores={"valid": valid_scores[name], "test": test_scores[name]},
        predictions_sha256=sha256_file(directory / PREDICTIONS_FILE),
        source=str(directory / MODEL_FILE),
    )
    honest, honest_note = read_honest_estimate()

    registry = Registry(config.deploy.registry)
    registry.ensure()
    champion = registry.champion
    # A model already in the registry is not packaged (nor compared) again: after
    # `valuegate models promote/rollback` DVC sees the registry changed and reruns this
    # stage, which must not re-package (and re-promote) the model the user just rolled back
    # from, nor spend the test rows' budget on a look it has already had.
    held = registry.holding(name, final.predictions_sha256)
    bundle = registry.load("champion") if champion is not None and held is None else None
    step = steps.package(
        config, schema, _LazySplits(test), report, final,
        champion=bundle, champion_name=champion, ledger=registry.budget(), honest=honest,
        honest_note=honest_note, held=held,
        held_unfinished=held is not None and registry.unfinished_promotion(held),
        next_version=registry.next_version(),
        git_revision=git_revision(),
    )  # fmt: skip
    record = step.record
    if step.ledger is not None:
        # Every comparison on these test rows is a look at them: record it before anything
        # else can fail, so a crash after the look cannot give it back.
        registry.write_budget(step.ledger)
    if step.bundle is not None:
        parts = step.bundle
        pipeline = (
            parts.pipeline.load() if isinstance(parts.pipeline, _Deferred) else parts.pipeline
        )
        written = registry.save(  # under the registry's lock
            parts.version,
            pipeline,
            parts.manifest,
            parts.check,
            parts.files,
        )
        if step.promote:
            registry.promote(parts.version)
        finish_record(record, parts.version, written["scoring"]["hot_path"], registry.champion)
    elif step.promote_held is not None:
        registry.promote(step.promote_held)
        finish_record(record, None, None, registry.champion)
    else:
        finish_record(record, None, None, champion)
    write_record(DEPLOY_FILE, DEPLOY_METRICS, stamp(record, config))  # lineage: contract B
    log.info(f"deploy gate: {record['reason']}")
    if record["packaged"]:
        log.info(
            f"packaged {record['version']} ({record['hot_path']}); "
            f"champion: {record['champion_after']}"
        )
    if record.get("refused") and config.deploy.strict:
        raise GateRefusedError(record["reason"])


class _Deferred:
    """The final model's pipeline, loaded only when a bundle is written (skops loading
    takes a while and most reruns package nothing)."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load

    def load(self) -> Any:
        return self._load()


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
