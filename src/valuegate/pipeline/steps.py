"""The pipeline's steps: each a function of (config, inputs) -> outputs, with no file I/O.

The DVC stages (valuegate.stages) read their inputs from files, call one of these and
write what it returns; `run` (pipeline/run.py) chains them in memory for sweeps,
backtests and the bench. A record a step returns is exactly what its stage writes (the
stage only adds the lineage stamp), so both paths give the same bytes.

Shapes: `splits` maps "train" / "valid" / "test" to frames (one row per case, the columns
the schema names); scores are float arrays of shape (rows of the split,), calibrated
probabilities for binary tasks and predictions for regression; money is per
`objective.period` in `objective.currency`.
"""

from __future__ import annotations

from valuegate.pipeline.assess import (
    ACCEPT_FILE,
    Assessed,
    assess,
    assess_data,
    assessed_data,
    blocked_error,
    remedied_schema,
)
from valuegate.pipeline.common import Scored, Splits, amounts, as_recorded, scored, split_scores
from valuegate.pipeline.evaluate import evaluate
from valuegate.pipeline.fit import fit_baselines, fit_candidate
from valuegate.pipeline.gate import gate, gate_refusal
from valuegate.pipeline.package import FinalModel, Packaged, final_model, package
from valuegate.pipeline.prepare import prepare
from valuegate.pipeline.score import FIX_HINT as SCORE_FIX_HINT
from valuegate.pipeline.score import ScoredBatch, no_champion_record, score, score_record
from valuegate.pipeline.tune import Tuned, WorkerPool, refit_best, selected, tune

__all__ = [
    "ACCEPT_FILE",
    "SCORE_FIX_HINT",
    "Assessed",
    "FinalModel",
    "Packaged",
    "Scored",
    "ScoredBatch",
    "Splits",
    "Tuned",
    "WorkerPool",
    "amounts",
    "as_recorded",
    "assess",
    "assess_data",
    "assessed_data",
    "blocked_error",
    "evaluate",
    "final_model",
    "fit_baselines",
    "fit_candidate",
    "gate",
    "gate_refusal",
    "no_champion_record",
    "package",
    "prepare",
    "refit_best",
    "remedied_schema",
    "score",
    "score_record",
    "scored",
    "selected",
    "split_scores",
    "tune",
]
