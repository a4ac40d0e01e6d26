"""Step tune: Optuna on business value for the candidates the gate passed, and the
best params refit."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.pipeline.common import Splits

if TYPE_CHECKING:  # Optuna and the estimators
    from valuegate.training import FittedModel
    from valuegate.tuning import StudyResult


@dataclass
class Tuned:
    """The tune step's outputs: each tuned model with its study, and the record
    reports/tune.json holds (without its lineage)."""

    models: list[tuple[FittedModel, StudyResult]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def selected(gate_record: dict[str, Any], which: str) -> list[str]:
    """The candidates to tune: none unless one passed; the best one or every passing one."""
    if not gate_record["passed"]:
        return []
    return [gate_record["best_passing"]] if which == "best" else list(gate_record["passed"])


def refit_best(config: Config, schema: Schema, splits: Splits, result: Any) -> FittedModel:
    """The study's best params refit on the training split and scored like any model
    (training.fit_model: out-of-fold calibration and operating point). The one refit path,
    for the pipeline and for the `valuegate tune` command."""
    from valuegate.training import fit_model
    from valuegate.tuning import tuned_spec

    name = result.candidate
    spec = tuned_spec(config.model[name], result.best_params)
    model = fit_model(f"{name}_tuned", "tuned", spec, config, schema, splits)
    model.info.update({"tuned_from": name, "study": result.study, "forced": result.forced})
    return model


WorkerPool = Callable[[str], AbstractContextManager[Callable[[str], None] | None]]
"""candidate -> a context in which extra tuning workers join its study; it yields the
callback to run once the study is ready (or None). The DVC stage starts processes."""


def tune(
    config: Config,
    schema: Schema,
    splits: Splits,
    gate_record: dict[str, Any],
    journal: Path | None = None,
    workers: WorkerPool | None = None,
) -> Tuned:
    """Optuna on business value (tuning.tune_candidate) for the candidates that passed the
    gate (`tune.candidates`), then each best model refit. No candidate passed: no study,
    and the record says why (`skipped_because`: the gate's reasons).

    `journal` is the Optuna journal file (None: the study lives in memory unless
    `tune.storage` names a database); `workers` adds worker processes to each study.
    """
    names = selected(gate_record, config.tune.candidates)
    record: dict[str, Any] = {"tuning_allowed": bool(names), "studies": {}}
    if not names:
        record["skipped_because"] = [d["reason"] for d in gate_record["candidates"].values()]
        return Tuned([], record)
    from valuegate.tuning import tune_candidate

    fitted = []
    for name in names:
        with (workers or (lambda _name: nullcontext(None)))(name) as on_ready:
            result = tune_candidate(
                config,
                schema,
                splits["train"],
                name,
                journal,
                # Only once this process has closed trials left running by a killed run.
                on_study_ready=on_ready,
            )
        # No timings in a git-tracked record (they differ on every run).
        record["studies"][name] = {k: v for k, v in result.summary().items() if k != "seconds"}
        fitted.append((refit_best(config, schema, splits, result), result))
    return Tuned(fitted, record)
