"""Every path the pipeline reads or writes, relative to the project root: the one list that
`dvc.yaml` and the code agree on (tests/test_pipeline_steps.py checks every stage's `outs`
and `metrics` in dvc.yaml against `STAGE_OUTPUTS` below).

The pipeline's steps (valuegate.pipeline) never touch these: only the stage modules
(valuegate.stages) and the CLI read and write them.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
PREPARED = DATA / "prepared"  # what `prepare` writes and `assess` reads
# What the models read: the prepared splits once `assess` let them through (with any
# opt-in remedies applied). Blocked data never gets here, so nothing downstream runs.
ASSESSED = DATA / "assessed"
SCHEMA_FILE = ASSESSED / "schema.json"

MODELS = Path("models")
BASELINES = MODELS / "baselines"
CANDIDATES = MODELS / "candidates"
TUNED = MODELS / "tuned"
REGISTRY = MODELS / "registry"  # deploy.registry must lie inside it (schema check)

METRICS = Path("metrics")  # numbers only: what `dvc exp show` makes columns of
REPORTS = Path("reports")  # the full records: sentences, names, lineage
PLOTS = Path("plots")
LOGS = Path("logs")  # git-ignored: timings and other run-to-run noise

# One model's files inside its directory (models/<role>/<name>/).
MODEL_FILE = "model.skops"
PREDICTIONS_FILE = "predictions.parquet"
INFO_FILE = "fit.json"

ASSESS_RECORD = REPORTS / "assessment.json"
ASSESS_REPORT = REPORTS / "assessment.html"
ASSESS_METRICS = METRICS / "assess.json"
ASSESS_TIMINGS = LOGS / "assess-timings.json"

GATE_RECORD = REPORTS / "gate.json"
GATE_METRICS = METRICS / "gate.json"

TUNE_RECORD = REPORTS / "tune.json"
TUNE_METRICS = METRICS / "tune.json"
TUNE_PLOTS = PLOTS / "tune"
# The Optuna study journal: persists across reruns, so an interrupted study resumes.
TUNE_JOURNAL = Path("tuning") / "optuna.journal"

EVALUATE_RECORD = REPORTS / "evaluation.json"
EVALUATE_METRICS = METRICS / "evaluate.json"
EVALUATE_PLOTS = PLOTS / "evaluate"

DEPLOY_RECORD = REPORTS / "deploy.json"
DEPLOY_METRICS = METRICS / "deploy.json"

RUN_REPORT = REPORTS / "run.html"

MONITOR_RECORD = REPORTS / "monitor.json"
MONITOR_REPORT = REPORTS / "monitor.html"
MONITOR_METRICS = METRICS / "monitor.json"

SCORED = REPORTS / "scored.parquet"
SCORE_RECORD = REPORTS / "score.json"
SCORE_METRICS = METRICS / "score.json"

# stage -> (outs, metrics) exactly as dvc.yaml declares them; `train` is the foreach
# stage, one `models/candidates/<name>` per candidate (written here with `${key}`).
STAGE_OUTPUTS: dict[str, tuple[tuple[Path, ...], tuple[Path, ...]]] = {
    "prepare": ((PREPARED,), ()),
    "assess": ((ASSESSED, ASSESS_REPORT, ASSESS_RECORD), (ASSESS_METRICS,)),
    "baseline": ((BASELINES,), ()),
    "train": ((CANDIDATES / "${key}",), ()),
    "gate": ((GATE_RECORD,), (GATE_METRICS,)),
    "tune": ((TUNED, TUNE_JOURNAL, TUNE_RECORD, TUNE_PLOTS), (TUNE_METRICS,)),
    "evaluate": ((EVALUATE_RECORD, EVALUATE_PLOTS), (EVALUATE_METRICS,)),
    "package": ((REGISTRY, DEPLOY_RECORD), (DEPLOY_METRICS,)),
    "report": ((RUN_REPORT,), ()),
    "score": ((SCORED, SCORE_RECORD), (SCORE_METRICS,)),
    "monitor": ((MONITOR_RECORD, MONITOR_REPORT), (MONITOR_METRICS,)),
}
