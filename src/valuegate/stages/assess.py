"""Stage `assess`: check the prepared data for what will hurt the models, write the
report, and let the data through to the models only when nothing blocks.

Reads data/prepared; writes reports/assessment.html (self-contained), the full record
reports/assessment.json, the DVC metrics metrics/assess.json and, unless a blocking
finding is neither accepted nor remedied, data/assessed (what every model stage reads).
Without remedies data/assessed holds hard links to the prepared files (the stage writes
no second copy; DVC's cache may check them out as copies later); with remedies, the
rewritten splits and schema.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
from pathlib import Path

from valuegate.assess.assessment import Assessment, assess
from valuegate.assess.findings import AssessmentBlockedError, blocked_message
from valuegate.assess.inputs import AssessData
from valuegate.assess.remedies import remedied_splits
from valuegate.config import load_params
from valuegate.config.schema import Config
from valuegate.data import SPLITS, Schema, target_vector
from valuegate.errors import DataError
from valuegate.io import atomic_dir, atomic_write_json, atomic_write_text
from valuegate.stages.common import (
    ASSESSED,
    METRICS,
    PREPARED,
    REPORTS,
    check_data,
    metrics_view,
    read_splits,
    run_stage,
)

METRICS_FILE = METRICS / "assess.json"
RECORD_FILE = REPORTS / "assessment.json"
REPORT_FILE = REPORTS / "assessment.html"
ACCEPT_FILE = "conf/assess/default.yaml (or the assess config you select)"
# Seconds per check are run-to-run noise: kept out of the tracked outputs above (a second
# run of the same data must leave git status and dvc.lock unchanged) and written here,
# under the git-ignored logs/.
TIMINGS_FILE = Path("logs") / "assess-timings.json"

log = logging.getLogger(__name__)


def assess_data(splits, schema: Schema, config: Config) -> AssessData:
    return AssessData(
        splits=splits,
        task=schema.task,
        target=schema.target,
        positive_label=schema.positive_label,
        numeric=list(schema.numeric),
        categorical=list(schema.categorical),
        id_column=schema.id_column,
        time_column=config.data.time_column,
        amount_column=schema.amount_column,
        split_method=config.data.split.method,
    )


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link costs no space or time; copy where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def remedied_schema(schema: Schema, splits, config: Config, dropped: list[str]) -> Schema:
    positives = None
    if schema.task == "binary":
        positives = {s: int(target_vector(f, config.data).sum()) for s, f in splits.items()}
        for split, count in positives.items():
            if count in (0, len(splits[split])):
                raise DataError(
                    f"assess.remedies: after the remedies the {split} split holds one class "
                    f"of {schema.target!r}; turn the row remedies off."
                )
    categorical = [c for c in schema.categorical if c not in dropped]
    return dataclasses.replace(
        schema,
        numeric=[c for c in schema.numeric if c not in dropped],
        categorical=categorical,
        categories={c: sorted(splits["train"][c].dropna().unique().tolist()) for c in categorical},
        rows={s: len(f) for s, f in splits.items()},
        positives=positives,
    )


def assessed_data(assessment: Assessment, splits, schema: Schema, config: Config):
    """(splits, schema) the models will read, or None when no remedy changes the data.
    Raises DataError (before anything is written) when the remedies leave a split unusable."""
    if not assessment.dropped_columns and not any(len(r) for r in assessment.dropped_rows.values()):
        return None
    kept = remedied_splits(splits, assessment.dropped_columns, assessment.dropped_rows)
    return kept, remedied_schema(schema, kept, config, assessment.dropped_columns)


def write_assessed(remedied) -> None:
    with atomic_dir(ASSESSED) as tmp:
        if remedied is None:
            for name in (*(f"{s}.parquet" for s in SPLITS), "schema.json"):
                link_or_copy(PREPARED / name, tmp / name)
            return
        kept, schema = remedied
        for name, frame in kept.items():
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
        atomic_write_json(tmp / "schema.json", schema.to_dict())


def summary(assessment: Assessment) -> str:
    counts = assessment.counts()
    line = (
        f"assess: {counts['block']} block, {counts['warn']} warn, {counts['info']} info "
        f"({counts['accepted']} accepted, {counts['remedied']} remedied); report: {REPORT_FILE}"
    )
    honest = assessment.honest_estimate
    if honest:
        name = "ROC AUC" if honest["metric"] == "roc_auc" else "R2"
        line += (
            f"\nassess: honest estimate: {name} {honest['value']:.3f} (quick model, "
            f"cross-validated on the {len(honest['features'])} features the models will see)"
        )
    if assessment.remedies:
        line += "\nassess: remedies: " + "; ".join(
            f"{r['finding']} ({r['remedy']})" for r in assessment.remedies
        )
    return line


def write_timings(seconds: dict[str, float]) -> None:
    """Log the seconds per check (INFO) and keep the last run's under logs/ (untracked)."""
    for name, value in seconds.items():
        log.info("assess: %s took %.2f s", name, value)
    atomic_write_json(
        TIMINGS_FILE, {"seconds": seconds, "total_seconds": round(sum(seconds.values()), 3)}
    )


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config, PREPARED)  # prepared from this config (contract B)
    splits = read_splits(PREPARED)
    assessment = assess(assess_data(splits, schema, config), config.assess, config.seed)

    from valuegate.assess.report import render_html

    # Remedies that would leave a split with one class fail here, before the report
    # could say that nothing blocks.
    remedied = None if assessment.blocked else assessed_data(assessment, splits, schema, config)

    # The report and metrics are written even when the run is blocked: they say why.
    atomic_write_text(
        REPORT_FILE, render_html(assessment, f"Data assessment: {config.data.name}", ACCEPT_FILE)
    )
    atomic_write_json(RECORD_FILE, assessment.record())
    # numbers only (the blocking finding ids are in the record): `dvc exp show` columns
    atomic_write_json(METRICS_FILE, metrics_view(assessment.metrics()) or {})
    write_timings(assessment.seconds)
    for accept_id in assessment.unused_accepts:
        print(
            f"assess: warning: assess.accept names {accept_id!r}, which matched no finding "
            "this run (remove it if the problem is gone)",
            file=sys.stderr,
        )
    print(summary(assessment))
    if assessment.blocked:
        # Stale assessed data from an earlier run must not feed the models either.
        shutil.rmtree(ASSESSED, ignore_errors=True)
        raise AssessmentBlockedError(
            blocked_message(assessment.blocking, ACCEPT_FILE, str(REPORT_FILE))
        )
    write_assessed(remedied)


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
