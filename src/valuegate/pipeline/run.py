"""The whole pipeline in memory: prepare -> assess -> fit (baselines, candidates) -> gate
-> tune -> evaluate, the same steps the DVC stages call, chained without files.

Sweeps (`valuegate train -m`), backtests and retraining call `run` period after period in
one process; `dvc repro` runs the same steps a process per stage, and writes the same
records (tests/test_pipeline_steps.py checks the metrics are byte-identical).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.errors import ConfigError
from valuegate.pipeline import steps

if TYPE_CHECKING:
    from valuegate.training import FittedModel

STEPS = ("prepare", "assess", "fit", "gate", "tune", "evaluate")
"""The steps in order; `run(..., through=step)` stops after `step`."""

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """What one run produced, step by step (None: the step did not run).

    `splits` / `schema` are the prepared data; `assessed` what the models read. `models`:
    name -> fitted model, baselines first, then candidates, then tuned models. `stopped`
    says why the run ended before `through` ("blocked": the assessment blocked the data;
    "gate refused": gate.strict and no candidate passed), None when it did not.
    """

    config: Config
    splits: dict[str, pd.DataFrame] | None = None
    schema: Schema | None = None
    assessed: steps.Assessed | None = None
    models: dict[str, FittedModel] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    tuned: steps.Tuned | None = None
    evaluation: dict[str, Any] | None = None
    plots: dict[str, Any] | None = None
    stopped: str | None = None
    error: Exception | None = None  # the error `stopped` stands for (raise it to stop)

    @property
    def data(self) -> tuple[dict[str, pd.DataFrame], Schema]:
        """(splits, schema) the models read: assessed when assess ran, else prepared."""
        if self.assessed is not None:
            return self.assessed.splits, self.assessed.schema
        assert self.splits is not None and self.schema is not None
        return self.splits, self.schema

    def scored(self) -> steps.Scored:
        return steps.scored(self.models)


def run(
    config: Config,
    raw: pd.DataFrame,
    source_sha256: str,
    *,
    through: str = "evaluate",
    journal: Path | None = None,
    raise_blocked: bool = True,
    tune: bool = True,
    cache: dict[str, Any] | None = None,
) -> PipelineResult:
    """Run the steps on `raw` (the table `data.path` holds; `source_sha256` its digest,
    recorded in the schema) up to and including `through` (one of STEPS).

    A blocked assessment raises AssessmentBlockedError (`raise_blocked=False`: returns the
    result with `stopped="blocked"`, the assessment in `assessed`). With gate.strict and no
    candidate passing, the run stops after the gate (`stopped="gate refused"`), as
    `dvc repro` does. `journal`: the Optuna journal file for tuning (None: in memory);
    `tune=False` skips the tune step (evaluation then values the untuned models only).
    `cache`: a dict kept across runs (a sweep's): the prepared and assessed data are
    reused by every run whose data, seed and assess settings and raw table are the same.
    """
    if through not in STEPS:
        raise ConfigError(f"through: {through!r} is not a pipeline step; one of {list(STEPS)}")
    last = STEPS.index(through)
    result = PipelineResult(config)

    key = json.dumps(
        [
            config.data.model_dump(),
            config.retrain.window.model_dump(),  # the window changes the splits
            config.seed,
            config.assess.model_dump(),
            source_sha256,
        ],
        sort_keys=True,
        default=str,
    )
    if cache is not None and key in cache and last >= STEPS.index("assess"):
        result.splits, result.schema, result.assessed = cache[key]
    else:
        result.splits, result.schema = steps.prepare(raw, config, source_sha256)
        if last < STEPS.index("assess"):
            return result
        result.assessed = steps.assess(result.splits, result.schema, config, raise_blocked=False)
        if cache is not None:
            cache[key] = (result.splits, result.schema, result.assessed)
    if result.assessed.blocked:
        result.stopped = "blocked"
        result.error = steps.blocked_error(result.assessed.assessment)
        if raise_blocked:
            raise result.error
        return result
    splits, schema = result.data
    if last < STEPS.index("fit"):
        return result
    result.models.update(steps.fit_baselines(config, schema, splits))
    for name in config.model:
        result.models[name] = steps.fit_candidate(config, schema, splits, name)
    if last < STEPS.index("gate"):
        return result
    result.gate = steps.gate(config, schema, splits["valid"], result.scored())
    refusal = steps.gate_refusal(config, result.gate)
    if refusal is not None:
        result.stopped, result.error = "gate refused", refusal
        return result
    if last < STEPS.index("tune"):
        return result
    if tune:
        result.tuned = steps.tune(config, schema, splits, result.gate, journal)
        for model, _study in result.tuned.models:
            result.models[model.name] = model
    if last < STEPS.index("evaluate"):
        return result
    result.evaluation, result.plots = steps.evaluate(
        config, schema, splits["valid"], splits["test"], result.scored()
    )
    return result
