"""Stage `assess`: check the prepared data for what will hurt the models, write the
report, and let the data through to the models only when nothing blocks.

Reads data/prepared; writes reports/assessment.html (self-contained), the full record
reports/assessment.json, the DVC metrics metrics/assess.json and, unless a blocking
finding is neither accepted nor remedied, data/assessed (what every model stage reads).
Without remedies data/assessed holds hard links to the prepared files (the stage writes
no second copy; DVC's cache may check them out as copies later); with remedies, the
rewritten splits and schema. The work is `pipeline.steps.assess`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from valuegate.assess.assessment import Assessment
from valuegate.config import load_params
from valuegate.config.schema import Config
from valuegate.data import SPLITS
from valuegate.io import atomic_dir, atomic_write_json, atomic_write_text
from valuegate.paths import ASSESS_METRICS, ASSESS_RECORD, ASSESS_REPORT, ASSESS_TIMINGS
from valuegate.pipeline import steps
from valuegate.pipeline.assess import ACCEPT_FILE
from valuegate.pipeline.assess import assess_data as assess_data
from valuegate.stages.common import (
    ASSESSED,
    PREPARED,
    check_data,
    metrics_view,
    read_splits,
    run_stage,
)
from valuegate.stages.prepare import write_splits

METRICS_FILE = ASSESS_METRICS
RECORD_FILE = ASSESS_RECORD
REPORT_FILE = ASSESS_REPORT
# Seconds per check are run-to-run noise: kept out of the tracked outputs above (a second
# run of the same data must leave git status and dvc.lock unchanged) and written here,
# under the git-ignored logs/.
TIMINGS_FILE = ASSESS_TIMINGS

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.assess")


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link costs no space or time; copy where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_assessed(assessed: steps.Assessed, root: Path = Path(".")) -> None:
    """data/assessed: hard links to data/prepared when no remedy changed the data, else
    the remedied splits and schema."""
    if not assessed.remedied:
        with atomic_dir(root / ASSESSED) as tmp:
            for name in (*(f"{s}.parquet" for s in SPLITS), "schema.json"):
                link_or_copy(root / PREPARED / name, tmp / name)
        return
    write_splits(root / ASSESSED, assessed.splits, assessed.schema)


def write_assessment(
    assessment: Assessment, config: Config, root: Path = Path("."), report: bool = True
) -> None:
    """The full record, the metrics (numbers only: `dvc exp show` columns) and, with
    `report`, the self-contained HTML page, under `root`."""
    if report:
        from valuegate.assess.report import render_html

        atomic_write_text(
            root / REPORT_FILE,
            render_html(assessment, f"Data assessment: {config.data.name}", ACCEPT_FILE),
        )
    atomic_write_json(root / RECORD_FILE, assessment.record())
    atomic_write_json(root / METRICS_FILE, metrics_view(assessment.metrics()) or {})


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
    # Remedies that would leave a split with one class fail in the step, before the
    # report could say that nothing blocks.
    assessed = steps.assess(read_splits(PREPARED), schema, config, raise_blocked=False)
    assessment = assessed.assessment
    # The report and metrics are written even when the run is blocked: they say why.
    write_assessment(assessment, config)
    write_timings(assessment.seconds)
    for accept_id in assessment.unused_accepts:
        log.warning(
            f"assess: warning: assess.accept names {accept_id!r}, which matched no finding "
            "this run (remove it if the problem is gone)"
        )
    log.info(summary(assessment))
    if assessed.blocked:
        # Stale assessed data from an earlier run must not feed the models either.
        shutil.rmtree(ASSESSED, ignore_errors=True)
        raise steps.blocked_error(assessment, REPORT_FILE)
    write_assessed(assessed)


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
