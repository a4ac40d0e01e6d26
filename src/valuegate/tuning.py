"""Optuna tuning on business value, with pruning and a stop-on-value rule.

The objective of a trial is the candidate's business value per period from K-fold
cross-validation on the training split: each fold's held-out predictions are valued by the
one value model (`business.py`) at the operating point chosen on that fold. With pruning on,
folds are reported as intermediate values, so a median pruner stops trials that are clearly
worse (with it off they are not written: each report is a storage write).

`StopOnValue` ends a study when the best value has not improved by at least
`min_improvement` (currency per period) in the last `patience` finished trials: tuning stops
when it stops adding value. Studies live in a journal file (default) or any RDB URL, so an
interrupted study resumes with its completed trials, and several worker processes can
share one study.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from valuegate.business import BinaryValueModel, ValueModel
from valuegate.config.schema import Constraint, ModelSpec, SearchDim
from valuegate.errors import ArtifactError, ConfigError
from valuegate.folds import fold_kind, make_folds
from valuegate.models import (
    _accepted_params,
    build_pipeline,
    check_param_names,
    estimator_class,
    predict_scores,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def check_search_space(key: str, spec: ModelSpec, task: str) -> None:
    """Refuse an empty search space or a key the estimator does not accept."""
    if not spec.search_space:
        raise ConfigError(
            f"{key}.search_space is empty: nothing to tune. Add ranges such as "
            "`max_depth: {type: int, low: 2, high: 8}`."
        )
    check_param_names(f"{key}.search_space.{{name}}", spec.search_space, spec.estimator, task)


def suggest(trial: optuna.Trial, space: dict[str, SearchDim]) -> dict[str, Any]:
    """Sample one point of the search space."""
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "categorical":
            params[name] = trial.suggest_categorical(name, dim.choices)
        elif dim.type == "int":
            params[name] = trial.suggest_int(
                name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log
            )
        else:
            params[name] = trial.suggest_float(
                name, float(dim.low), float(dim.high), step=dim.step, log=dim.log
            )
    return params


FOLD_KINDS = {
    "time": "forward-chaining (data.split.method is time: each fold trains on the past and "
    "is valued on the block after it)",
    "group": "grouped by data.id_column (its values repeat: no id is on both sides of a fold)",
    "kfold": "K-fold (stratified by the label for binary tasks)",
}


def tuning_folds(
    config: Any, schema: Any, train: pd.DataFrame, y: np.ndarray
) -> tuple[str, list[tuple]]:
    """(kind, folds) for cross-validating on the training split, from valuegate.folds:
    forward-chaining when the split is by time (the training split is then in time order),
    grouped when the id column repeats, else K-fold."""
    time_ordered = config.data.split.method == "time"
    groups = None
    if schema.id_column and schema.id_column in train.columns:
        groups = train[schema.id_column].to_numpy()
    kind = fold_kind(time_ordered, groups)
    folds = make_folds(
        y, schema.task, config.tune.n_folds, config.seed, time_ordered=time_ordered, groups=groups
    )
    return kind, folds


@dataclass
class TuningProblem:
    """Everything a trial needs: data, the value model, and how to build the pipeline."""

    key: str  # config path of the candidate, e.g. "model.xgboost"
    spec: ModelSpec
    task: str
    numeric: list[str]
    categorical: list[str]
    X: pd.DataFrame
    y: np.ndarray
    amount: np.ndarray | None
    value_model: ValueModel
    constraints: list[Constraint]
    folds: list[tuple]
    seed: int
    estimator_overrides: dict[str, Any]
    worker: int = 0
    fold_kind: str = "kfold"  # valuegate.folds.fold_kind of `folds`

    def params_for(self, suggested: dict[str, Any]) -> ModelSpec:
        params = {**self.spec.params, **suggested, **self.estimator_overrides}
        accepted = _accepted_params(estimator_class(self.spec.estimator, self.task))
        params = {k: v for k, v in params.items() if k in accepted}
        return self.spec.model_copy(update={"params": params})

    def fold_value(self, spec: ModelSpec, fold: tuple) -> float:
        train_idx, test_idx = fold
        pipeline = build_pipeline(
            self.key, spec, self.task, self.numeric, self.categorical, self.seed
        )
        pipeline.fit(self.X.iloc[train_idx], self.y[train_idx])
        scores = predict_scores(pipeline, self.X.iloc[test_idx], self.task)
        y_test = self.y[test_idx]
        if isinstance(self.value_model, BinaryValueModel):
            amount = None if self.amount is None else self.amount[test_idx]
            point = self.value_model.choose_threshold(y_test, scores, amount, self.constraints)
        else:
            point = self.value_model.choose_offset(y_test, scores, self.constraints)
        return point.value_per_period

    def objective(self, trial: optuna.Trial) -> float:
        spec = self.params_for(suggest(trial, self.spec.search_space))
        trial.set_user_attr("worker", self.worker)
        pruned_study = not isinstance(trial.study.pruner, optuna.pruners.NopPruner)
        values: list[float] = []
        for index, fold in enumerate(self.folds):
            values.append(self.fold_value(spec, fold))
            if pruned_study:
                trial.report(float(np.mean(values)), index)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return float(np.mean(values))


class StopOnValue:
    """Stop when no trial improved the best value by `min_improvement` in `patience` trials.

    Counts finished trials (complete or pruned) in trial-number order across every worker
    of the study, so each worker reaches the same verdict from the shared storage.
    """

    def __init__(self, min_improvement: float, patience: int) -> None:
        self.min_improvement = min_improvement
        self.patience = patience
        self.fired = False

    def stale_for(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        """Finished trials since the last improvement of at least `min_improvement`."""
        finished = sorted((t for t in trials if t.state in FINISHED), key=lambda t: t.number)
        best = None
        since = 0
        for trial in finished:
            value = trial.value if trial.state == TrialState.COMPLETE else None
            if value is not None and (best is None or value >= best + self.min_improvement):
                best = value
                since = 0
            else:
                since += 1
        return since

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.stale_for(study.get_trials(deepcopy=False)) >= self.patience:
            self.fired = True
            study.stop()


def open_storage(url: str | None, journal_path: Path) -> Any:
    """A journal file at `journal_path` (default) or the RDB at `url`, with clear errors."""
    if url:
        import time

        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(url)
            except ImportError as exc:
                raise ConfigError(
                    f"tune.storage: no database driver for {url!r} ({exc}); for PostgreSQL "
                    "install one: pip install 'psycopg[binary]'"
                ) from None
            except Exception as exc:
                # Workers starting together race to create a new database's tables.
                if attempt == 2:
                    raise ConfigError(f"tune.storage: cannot open {url!r}: {exc}") from None
                time.sleep(1.0 + attempt)
    from optuna.storages.journal import JournalFileBackend

    journal_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # An absolute path matters: Optuna's lock is a symlink to this path, and a relative
        # target breaks its stale-lock detection, so a lock left by a killed process (SIGKILL
        # mid-write) would block every later run instead of expiring after 30 s.
        backend = JournalFileBackend(str(journal_path.resolve()))
        storage = optuna.storages.JournalStorage(backend)
        storage.get_all_studies()
    except Exception as exc:
        raise ArtifactError(
            f"{journal_path} is not a readable Optuna journal ({type(exc).__name__}: {exc}). "
            "It is corrupt or not valuegate's; move it away to start a fresh study."
        ) from None
    return storage


def study_name(candidate: str, fingerprint: dict[str, Any]) -> str:
    """A name that changes whenever anything that makes trials comparable changes."""
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode())
    return f"valuegate-{candidate}-{digest.hexdigest()[:12]}"


def fail_stale_running(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed process as FAIL, so they are not waited on."""
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        count += 1
    return count


CLAIMED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def run_study(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    timeout: float | None,
    stopper: StopOnValue,
) -> str:
    """Run trials until the study holds `n_trials` finished ones, the stop rule fires or
    the timeout passes; return why it stopped ("stop_on_value", "n_trials", "timeout").

    Uses ask/tell so that several processes sharing the study never run more than
    `n_trials` between them: a trial whose number comes after `n_trials` claimed ones
    (complete, pruned or running) is told FAIL, marked surplus, and not run; that worker
    then stops, leaving the remaining slots to the workers running them.
    """
    import time

    started = time.monotonic()
    while True:
        trials = study.get_trials(deepcopy=False)
        if stopper.stale_for(trials) >= stopper.patience:
            stopper.fired = True
            return "stop_on_value"
        if sum(t.state in FINISHED for t in trials) >= n_trials:
            return "n_trials"
        if timeout is not None and time.monotonic() - started >= timeout:
            return "timeout"
        trial = study.ask()
        # Fewer than n_trials numbers precede a trial numbered below n_trials, so only a
        # later one can be surplus; that check reads the storage again.
        if trial.number >= n_trials and (
            sum(t.number < trial.number for t in study.get_trials(deepcopy=False, states=CLAIMED))
            >= n_trials
        ):
            # The remaining slots are being run by other workers.
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            return "n_trials"
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        try:
            study.tell(trial, value)
        except ValueError:
            # Another process closed this trial (it looked abandoned); its slot is retried.
            continue


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """trial, state, value, best_so_far (value per period) for plots."""
    rows = []
    best = -np.inf
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        value = trial.value if trial.state == TrialState.COMPLETE else np.nan
        if value == value:
            best = max(best, value)
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "value_per_period": value,
                "best_so_far": best if np.isfinite(best) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["trial", "state", "value_per_period", "best_so_far"])


@dataclass
class StudyResult:
    candidate: str
    study: str
    forced: bool
    stop_reason: str
    best_value: float
    best_params: dict[str, Any]
    n_complete: int
    n_pruned: int
    n_failed: int
    seconds: float
    trials: pd.DataFrame
    folds: dict[str, Any] | None = None  # kind, n_folds, how (see FOLD_KINDS)
    stop_rule: str = ""  # what the stop-on-value rule means, in words

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "study": self.study,
            "forced": self.forced,
            "stop_reason": self.stop_reason,
            "stop_rule": self.stop_rule,
            "folds": self.folds,
            "best_cv_value_per_period": self.best_value,
            "best_params": self.best_params,
            "trials_complete": self.n_complete,
            "trials_pruned": self.n_pruned,
            "trials_failed": self.n_failed,
            "seconds": round(self.seconds, 1),
        }


def create_study(name: str, storage: Any, seed: int, pruning: bool, forced: bool) -> optuna.Study:
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
        if pruning
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as exc:
        raise ArtifactError(f"cannot open study {name!r}: {type(exc).__name__}: {exc}") from None
    if forced:
        study.set_user_attr("forced", True)
    return study


def summarise(study: optuna.Study, candidate: str, stop_reason: str, seconds: float):
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise ConfigError(
            f"tuning {candidate}: no trial completed ({len(trials)} ran); see the errors above."
        )
    best = max(complete, key=lambda t: (t.value, -t.number))
    return StudyResult(
        candidate=candidate,
        study=study.study_name,
        forced=bool(study.user_attrs.get("forced", False)),
        stop_reason=stop_reason,
        best_value=float(best.value),
        best_params=dict(best.params),
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(
            t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials
        ),
        seconds=seconds,
        trials=trials_table(study),
    )


def build_problem(config: Any, schema: Any, train: pd.DataFrame, candidate: str) -> TuningProblem:
    """The tuning problem for `model.<candidate>` on the training split."""
    from valuegate.business import value_model
    from valuegate.data import target_vector

    key = f"model.{candidate}"
    spec = config.model[candidate]
    check_search_space(key, spec, schema.task)
    y = target_vector(train, config.data)
    accepted = _accepted_params(estimator_class(spec.estimator, schema.task))
    # Several worker processes share the cores: one thread per estimator then.
    overrides = {"n_jobs": 1} if config.tune.n_jobs > 1 and "n_jobs" in accepted else {}
    kind, folds = tuning_folds(config, schema, train, y)
    return TuningProblem(
        key=key,
        spec=spec,
        task=schema.task,
        numeric=schema.numeric,
        categorical=schema.categorical,
        X=train[schema.features],
        y=y,
        amount=train[schema.amount_column].to_numpy(float) if schema.amount_column else None,
        value_model=value_model(config),
        constraints=config.constraints,
        folds=folds,
        seed=config.seed,
        fold_kind=kind,
        estimator_overrides=overrides,
    )


def problem_fingerprint(config: Any, schema: Any, candidate: str) -> dict[str, Any]:
    """What makes two trials comparable; caps (n_trials, patience, ...) are not in it."""
    return {
        "candidate": config.model[candidate].model_dump(),
        "data": schema.source_sha256,
        "features": [schema.numeric, schema.categorical],
        "objective": config.objective.model_dump(),
        "task": schema.task,
        "n_folds": config.tune.n_folds,
        "seed": config.seed,
    }


def one_thread_per_worker(n_workers: int) -> AbstractContextManager:
    """With several workers, each process keeps to one OpenMP/BLAS thread.

    The estimators' own `n_jobs: 1` is not enough: xgboost still enters OpenMP regions
    with the default team, and libgomp's idle threads spin, so each worker's second
    thread steals the core its neighbour runs on (measured: two one-thread xgboost
    processes ran at 0.53x each; with this limit at 0.98x).
    """
    if n_workers <= 1:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def tune_candidate(
    config: Any,
    schema: Any,
    train: pd.DataFrame,
    candidate: str,
    journal_path: Path,
    forced: bool = False,
    worker_index: int = 0,
    on_study_ready: Callable[[str], None] | None = None,
    before_study: Callable[[], None] | None = None,
) -> StudyResult:
    """Run (or resume, or join as worker `worker_index` > 0) the study of `candidate`.

    `before_study` runs once the problem is built, before the study is opened (a worker
    waits there until worker 0 has closed trials a killed run left open); `on_study_ready`
    runs once worker 0 has done that.
    """
    import time

    tune = config.tune
    problem = build_problem(config, schema, train, candidate)
    problem.worker = worker_index
    if before_study is not None:
        before_study()
    storage = open_storage(tune.storage, journal_path)
    fingerprint = problem_fingerprint(config, schema, candidate)
    if problem.fold_kind != "kfold":  # other folds value trials on other rows
        fingerprint["folds"] = problem.fold_kind
    name = study_name(candidate, fingerprint)
    study = create_study(name, storage, config.seed + worker_index, tune.pruning, forced)
    if worker_index == 0:
        fail_stale_running(study)
    if on_study_ready is not None:
        on_study_ready(name)
    stopper = StopOnValue(tune.min_improvement, tune.patience)
    started = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with one_thread_per_worker(tune.n_jobs):
        reason = run_study(study, problem.objective, tune.n_trials, tune.timeout, stopper)
    seconds = time.monotonic() - started
    unit = f"{config.objective.currency}/{config.objective.period}"
    if reason == "stop_on_value":
        reason = (
            f"stop_on_value: no trial improved the best cross-validated value by at least "
            f"{tune.min_improvement:,.0f} {unit} in the last {tune.patience} trials"
        )
    elif reason == "n_trials":
        reason = f"n_trials: {tune.n_trials} trials finished"
    else:
        reason = f"timeout: {tune.timeout:g} s passed"
    result = summarise(study, candidate, reason, seconds)
    result.folds = {
        "kind": problem.fold_kind,
        "n_folds": len(problem.folds),
        "how": FOLD_KINDS[problem.fold_kind],
    }
    result.stop_rule = stop_rule_meaning(tune.min_improvement, tune.patience, unit)
    return result


def stop_rule_meaning(min_improvement: float, patience: int, unit: str) -> str:
    """What a stop on value does and does not say (issue 12: in simulation the rule fired
    in 88-100% of studies where no trial was truly better: it stops on noise)."""
    return (
        f"Stop-on-value ends a study when no trial improved the best cross-validated value "
        f"by at least {min_improvement:,.0f} {unit} in {patience} consecutive trials. It is a "
        "budget rule: stopping does not mean tuning found the optimum, nor that the best "
        "trial is truly better than the others (cross-validated values are noisy)."
    )


def tuned_spec(spec: ModelSpec, best_params: dict[str, Any]) -> ModelSpec:
    """The candidate's spec with the best trial's params on top."""
    return spec.model_copy(update={"params": {**spec.params, **best_params}})
