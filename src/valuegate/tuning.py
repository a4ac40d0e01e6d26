"""Optuna tuning on business value, with pruning and a stop-on-value rule.

The objective of a trial is what the pipeline would make of the candidate: its
out-of-fold scores from K-fold cross-validation on the training split are pooled, ONE
operating point is chosen on them by the one value model (`business.py`, `choose_point`,
as `training.fit_model` fixes every model's point) and the trial is worth their value per
period there. With pruning on, the running value after each fold is reported, so a median
or successive-halving pruner stops trials that are clearly worse (with it off nothing is
written: each report is a storage write). Large tables get fewer folds
(`effective_folds`); each finished trial logs a progress line in money (`Progress`).

`StopOnValue` ends a study when the best value has not improved by at least
`min_improvement` (currency per period) in the last `patience` finished trials: tuning stops
when it stops adding value. Studies live in a journal file (default) or any RDB URL, so an
interrupted study resumes with its completed trials, and several worker processes can
share one study.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from valuegate.business import ValueModel
from valuegate.config.schema import Constraint, ModelSpec, SearchDim
from valuegate.errors import ArtifactError, ConfigError
from valuegate.estimators import OverBudgetError, set_deadline
from valuegate.folds import fold_kind, make_folds
from valuegate.logs import show_progress
from valuegate.models import (
    _accepted_params,
    build_pipeline,
    check_param_names,
    estimator_class,
    fit_pipeline,
    predict_scores,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TrialOverBudget(optuna.TrialPruned):
    """A trial stopped by its time budget (`tune.trial_timeout`, or what was left of
    `tune.timeout`). Told to the study as PRUNED, with the reason in the trial's user attr
    `stopped`: it counts as finished (a study whose every trial runs long still ends), and
    TPE ranks it with the pruned ones, so the sampler moves away from slow regions."""


log = logging.getLogger(__name__)


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


def effective_folds(tune: Any, n_rows: int) -> int:
    """Folds a trial is cross-validated on: `tune.n_folds`, or `tune.large_table_n_folds`
    when the training split has more than `tune.large_table_rows` rows (then each held-out
    fold is large enough to value a trial steadily, and every extra fold is one more fit)."""
    if tune.large_table_rows is not None and n_rows > tune.large_table_rows:
        return min(tune.n_folds, tune.large_table_n_folds)
    return tune.n_folds


def tuning_folds(
    config: Any, schema: Any, train: pd.DataFrame, y: np.ndarray
) -> tuple[str, list[tuple]]:
    """(kind, folds) for cross-validating on the training split, from valuegate.folds:
    forward-chaining when the split is by time (the training split is then in time order),
    grouped when the id column repeats, else K-fold; `effective_folds` of them."""
    time_ordered = config.data.split.method == "time"
    groups = None
    if schema.id_column and schema.id_column in train.columns:
        groups = train[schema.id_column].to_numpy()
    kind = fold_kind(time_ordered, groups)
    n_folds = effective_folds(config.tune, len(train))
    folds = make_folds(
        y, schema.task, n_folds, config.seed, time_ordered=time_ordered, groups=groups
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
    time_ordered: bool = False  # rows in time order (early stopping stops on the last ones)
    # tune.sample_rows: {"rows", "of", "how", "seed"} when trials use a sample of the
    # training split ({}: every row)
    sample: dict[str, Any] = field(default_factory=dict)
    trial_timeout: float | None = None  # seconds per trial (tune.trial_timeout)
    study_deadline: float | None = None  # time.monotonic() when tune.timeout runs out
    # rows of the whole training split (X may be a sample): the encoding `auto` picks
    # depends on them, and trials must encode as the refit on every row will
    train_rows: int | None = None

    def params_for(self, suggested: dict[str, Any]) -> ModelSpec:
        params = {**self.spec.params, **suggested, **self.estimator_overrides}
        accepted = _accepted_params(estimator_class(self.spec.estimator, self.task))
        params = {k: v for k, v in params.items() if k in accepted}
        return self.spec.model_copy(update={"params": params})

    def fold_scores(
        self, spec: ModelSpec, fold: tuple, deadline: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit on the fold's training rows; (positions (m,) of its held-out rows, their raw
        scores (m,)). A binary fold whose training rows hold one class scores nothing.
        With `deadline` (a `time.monotonic()` value) an xgboost fit raises
        `estimators.OverBudgetError` after the first boosting round that ends past it."""
        train_idx, test_idx = fold
        if self.task == "binary" and len(np.unique(self.y[train_idx])) < 2:
            return np.array([], dtype=int), np.array([], dtype=float)
        pipeline = build_pipeline(
            self.key,
            spec,
            self.task,
            self.numeric,
            self.categorical,
            self.seed,
            self.time_ordered,
            train_rows=self.train_rows,
        )
        if deadline is not None:
            set_deadline(pipeline, deadline)
        fit_pipeline(pipeline, self.X.iloc[train_idx], self.y[train_idx])
        return np.asarray(test_idx), predict_scores(pipeline, self.X.iloc[test_idx], self.task)

    def pooled_value(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Value per period of out-of-fold scores pooled over `parts` (from `fold_scores`),
        at the one operating point the value model chooses on all of them together.

        This is how the pipeline itself fixes a model's point (training.fit_model, on
        cross-fitted scores): one threshold / offset for every fold. Choosing one per fold
        instead lets each fold's point fit that fold's own noise, which overstates every
        candidate and most the noisiest (tests/test_tuning.py). Value per period is a mean
        per case x volume, so a value over some folds compares with one over all of them.
        """
        idx = np.concatenate([p[0] for p in parts]) if parts else np.array([], dtype=int)
        if len(idx) == 0:
            raise optuna.TrialPruned("no fold could be fitted (each trained on one class)")
        scores = np.concatenate([p[1] for p in parts])
        amount = None if self.amount is None else self.amount[idx]
        point = self.value_model.choose_point(self.y[idx], scores, amount, self.constraints)
        return float(point.value_per_period)

    def fold_value(self, spec: ModelSpec, fold: tuple) -> float:
        """Value of one fold alone, at the point chosen on its own scores."""
        return self.pooled_value([self.fold_scores(spec, fold)])

    def budget(self, started: float) -> tuple[float | None, str]:
        """(the trial's deadline as a `time.monotonic()` value or None, the setting that
        sets it): `trial_timeout` seconds from `started`, or the end of the study's
        `tune.timeout` when that comes first."""
        options = []
        if self.trial_timeout is not None:
            options.append(
                (started + self.trial_timeout, f"tune.trial_timeout ({self.trial_timeout:g} s)")
            )
        if self.study_deadline is not None:
            options.append((self.study_deadline, "tune.timeout (the study's time ran out)"))
        return min(options) if options else (None, "")

    def over_budget(self, trial: optuna.Trial, started: float, why: str, done: int) -> None:
        """Record why the trial stopped (user attr `stopped`) and raise `TrialOverBudget`."""
        reason = (
            f"over {why}: stopped after {time.monotonic() - started:.0f} s, "
            f"{done} of {len(self.folds)} folds done"
        )
        trial.set_user_attr("stopped", reason)
        raise TrialOverBudget(reason)

    def objective(self, trial: optuna.Trial) -> float:
        """The trial's value per period (see the class). Its time budget (`budget`) is
        checked before each fold and, for xgboost, after every boosting round (an
        `estimators.Deadline` callback): a trial runs at most its budget plus one boosting
        round, or plus one fold's fit for an estimator with no round hook."""
        started = time.monotonic()
        deadline, why = self.budget(started)
        spec = self.params_for(suggest(trial, self.spec.search_space))
        trial.set_user_attr("worker", self.worker)
        pruned_study = not isinstance(trial.study.pruner, optuna.pruners.NopPruner)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for index, fold in enumerate(self.folds):
            if deadline is not None and time.monotonic() > deadline:
                self.over_budget(trial, started, why, index)
            try:
                parts.append(self.fold_scores(spec, fold, deadline))
            except OverBudgetError:
                self.over_budget(trial, started, why, index)
            if pruned_study:
                # The running value: the point chosen once on the folds done so far.
                value = self.pooled_value(parts)
                trial.report(value, index)
                if index < len(self.folds) - 1 and trial.should_prune():
                    raise optuna.TrialPruned()
        return value if pruned_study else self.pooled_value(parts)


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


def open_storage(
    url: str | None, journal_path: Path | None, *, lock_grace_seconds: int = 30
) -> Any:
    """A journal file at `journal_path` (default) or the RDB at `url`, with clear errors;
    in memory when neither is given (an in-process run, valuegate.pipeline.run).

    `lock_grace_seconds`: how long the journal's lock may go without the journal changing
    before a writer breaks it as left by a killed process (Optuna's grace period; its
    default, 30, is what the stages use: a shorter one risks breaking a live writer's lock
    on a slow shared disk, and Optuna warns below 3)."""
    if url:
        import time

        from sqlalchemy.exc import ArgumentError  # optuna's RDB storage is SQLAlchemy's

        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(url)
            except ImportError as exc:
                raise ConfigError(
                    f"tune.storage: no database driver for {url!r} ({exc}); for PostgreSQL "
                    "install one: pip install 'psycopg[binary]'"
                ) from None
            except ArgumentError as exc:
                # A URL SQLAlchemy cannot parse or an unknown database kind: no retry mends it.
                raise ConfigError(f"tune.storage: cannot open {url!r}: {exc}") from None
            except Exception as exc:
                # Workers starting together race to create a new database's tables.
                if attempt == 2:
                    raise ConfigError(f"tune.storage: cannot open {url!r}: {exc}") from None
                time.sleep(1.0 + attempt)
    if journal_path is None:
        return optuna.storages.InMemoryStorage()
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    journal_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # An absolute path matters: Optuna's lock is a symlink to this path, and a relative
        # target breaks its stale-lock detection, so a lock left by a killed process (SIGKILL
        # mid-write) would block every later run instead of expiring after the grace period.
        # The symlink lock is the backend's default; built here only to set its period.
        path = str(journal_path.resolve())
        backend = JournalFileBackend(path, JournalFileSymlinkLock(path, lock_grace_seconds))
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


def fail_stale_running(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark trials left RUNNING by a killed process as FAIL, so they are not waited on.

    `storage` is the one `study` was opened on (`open_storage`): Optuna's public storage
    methods find each trial's id from its study and number, so nothing reaches into the
    study's private `_storage` or a trial's `_trial_id`. (`optuna.storages.fail_stale_trials`
    is for heartbeat-enabled studies only.)"""
    count = 0
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        count += 1
    return count


CLAIMED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def run_study(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    timeout: float | None,
    stopper: StopOnValue,
    on_trial: Callable[[optuna.Study, int, str, float | None], None] | None = None,
) -> str:
    """Run trials until the study holds `n_trials` finished ones, the stop rule fires or
    the timeout passes; return why it stopped ("stop_on_value", "n_trials", "timeout").

    Uses ask/tell so that several processes sharing the study never run more than
    `n_trials` between them: a trial whose number comes after `n_trials` claimed ones
    (complete, pruned or running) is told FAIL, marked surplus, and not run; that worker
    then stops, leaving the remaining slots to the workers running them.

    `on_trial(study, number, state, value)` runs after each trial this process finished
    ("complete" with its value, "pruned" with None, "stopped" with None for a trial over
    its time budget, `TrialOverBudget`): the progress report.
    """
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
        except optuna.TrialPruned as exc:
            study.tell(trial, state=TrialState.PRUNED)
            if on_trial is not None:
                state = "stopped" if isinstance(exc, TrialOverBudget) else "pruned"
                on_trial(study, trial.number, state, None)
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        try:
            study.tell(trial, value)
        except ValueError:
            # Another process closed this trial (it looked abandoned); its slot is retried.
            continue
        if on_trial is not None:
            on_trial(study, trial.number, "complete", value)


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
    # trials stopped by their time budget (counted in n_pruned too; TrialOverBudget)
    n_over_budget: int = 0
    sample: dict[str, Any] | None = None  # tune.sample_rows: rows, of, how, seed; None: all

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "study": self.study,
            "forced": self.forced,
            "stop_reason": self.stop_reason,
            "stop_rule": self.stop_rule,
            "folds": self.folds,
            "sample": self.sample,
            "best_cv_value_per_period": self.best_value,
            "best_params": self.best_params,
            "trials_complete": self.n_complete,
            "trials_pruned": self.n_pruned,
            "trials_failed": self.n_failed,
            "trials_over_budget": self.n_over_budget,
            "seconds": round(self.seconds, 1),
        }


def make_pruner(pruning: bool, kind: str = "median") -> optuna.pruners.BasePruner:
    """The pruner over folds (a trial's step is the index of its last valued fold).

    "median": stop a trial whose running value after 2+ folds is below the median of
    earlier trials' at the same fold (after 5 trials). "successive_halving": Optuna's
    asynchronous successive halving with a fold as the resource unit: a trial goes on past
    2 folds (and past 4) only when its running value is in the top third of the trials
    that reached that fold.
    """
    if not pruning:
        return optuna.pruners.NopPruner()
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def create_study(
    name: str, storage: Any, seed: int, pruning: bool, forced: bool, pruner: str = "median"
) -> optuna.Study:
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=make_pruner(pruning, pruner),
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
    stopped = [t.user_attrs["stopped"] for t in trials if "stopped" in t.user_attrs]
    if not complete and stopped:
        raise ConfigError(
            f"tuning {candidate}: no trial completed: {len(stopped)} of {len(trials)} were "
            f"stopped by their time budget (the last: {stopped[-1]}). Raise tune.trial_timeout "
            "(or tune.timeout), or tune on fewer rows (tune.sample_rows)."
        )
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
        n_over_budget=len(stopped),
    )


def build_problem(config: Any, schema: Any, train: pd.DataFrame, candidate: str) -> TuningProblem:
    """The tuning problem for `model.<candidate>` on the training split."""
    from valuegate.business import value_model
    from valuegate.data import target_vector

    key = f"model.{candidate}"
    spec = config.model[candidate]
    check_search_space(key, spec, schema.task)
    train_rows = len(train)
    train, sample = tuning_sample(config, schema, train)
    # resources.threads shared by the tune workers; a trial's fit must fit in memory
    from valuegate.resources import apply_threads, guard_fit

    apply_threads(config.resources, workers=config.tune.n_jobs)
    guard_fit(key, spec, train, schema.numeric, schema.categorical, config.resources, train_rows)
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
        time_ordered=config.data.split.method == "time",
        estimator_overrides=overrides,
        sample=sample,
        trial_timeout=config.tune.trial_timeout,
        train_rows=train_rows,
    )


def tuning_sample(
    config: Any, schema: Any, train: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training rows trials are cross-validated on, and the record of the sample.

    Above `tune.sample_rows` rows, a seeded sample of that many (`data.sample_positions`,
    the sampler of `data.sample_rows`: stratified by the label for a binary task, uniform
    for regression; kept in their order, so a time split still folds forward in time).
    Trials only rank settings; the best ones are refit on every training row (`refit_best`).
    Returns (rows, {} when every row is used, else {"rows", "of", "how", "seed"})."""
    from valuegate.data import sample_positions, target_vector

    limit = config.tune.sample_rows
    if limit is None or len(train) <= limit:
        return train, {}
    binary = schema.task == "binary"
    y = target_vector(train, config.data) if binary else np.zeros(len(train))
    rows = sample_positions(y, limit, binary, config.seed)
    record = {
        "rows": len(rows),
        "of": len(train),
        "how": "stratified by the label" if binary else "uniform",
        "seed": config.seed,
    }
    return train.iloc[rows].reset_index(drop=True), record


# What a trial's value means; change it whenever that changes, so that a study valued
# the old way is never resumed (its trials would not compare with new ones).
VALUE_RULE = "one operating point chosen on the pooled out-of-fold scores (v2)"


def problem_fingerprint(
    config: Any, schema: Any, candidate: str, n_rows: int | None = None
) -> dict[str, Any]:
    """What makes two trials comparable; caps (n_trials, patience, timeout, the pruner)
    are not in it. The candidate's spec holds its early stopping; `n_rows` (training rows)
    decides the number of folds (`effective_folds`)."""
    n_folds = config.tune.n_folds if n_rows is None else effective_folds(config.tune, n_rows)
    return {
        "candidate": config.model[candidate].model_dump(),
        "data": schema.source_sha256,
        "features": [schema.numeric, schema.categorical],
        "objective": config.objective.model_dump(),
        "task": schema.task,
        "n_folds": n_folds,
        "time_ordered": config.data.split.method == "time",
        "value_rule": VALUE_RULE,
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
    journal_path: Path | None,
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
    tune = config.tune
    problem = build_problem(config, schema, train, candidate)
    problem.worker = worker_index
    if before_study is not None:
        before_study()
    storage = open_storage(tune.storage, journal_path)
    fingerprint = problem_fingerprint(config, schema, candidate, len(problem.y))
    fingerprint["folds"] = problem.fold_kind  # other folds value trials on other rows
    if problem.sample:  # other rows (only then: unsampled studies keep their names)
        fingerprint["sample"] = problem.sample
    name = study_name(candidate, fingerprint)
    study = create_study(
        name, storage, config.seed + worker_index, tune.pruning, forced, tune.pruner
    )
    if worker_index == 0:
        fail_stale_running(study, storage)
    if on_study_ready is not None:
        on_study_ready(name)
    stopper = StopOnValue(tune.min_improvement, tune.patience)
    started = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    unit = f"{config.objective.currency}/{config.objective.period}"
    if tune.timeout is not None:  # a trial running when the run's time is up stops too
        problem.study_deadline = time.monotonic() + tune.timeout
    with one_thread_per_worker(tune.n_jobs), Progress(candidate, tune.n_trials, unit) as report:
        reason = run_study(
            study, problem.objective, tune.n_trials, tune.timeout, stopper, on_trial=report
        )
    seconds = time.monotonic() - started
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
    result.sample = problem.sample or None
    return result


def clock(seconds: float) -> str:
    """Seconds as "42 s", "3:05" (minutes) or "1:02:05" (hours)."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(
    candidate: str,
    number: int,
    state: str,
    value: float | None,
    best: optuna.trial.FrozenTrial | None,
    finished: int,
    n_trials: int,
    unit: str,
    took: float | None = None,
    elapsed: float | None = None,
    note: str = "",
) -> str:
    """One trial's progress line, in money, e.g. "xgboost trial 7: 12,300 EUR/month in
    4 s (8/40 finished; best 14,100 EUR/month, trial 3; 1:05 elapsed)". `took`: the
    trial's seconds; `elapsed`: the study's so far; `note`: why a "stopped" trial stopped."""
    what = f"{value:,.0f} {unit}" if state == "complete" else state  # pruned | stopped
    if took is not None:
        what += f" in {clock(took)}"
    if note:
        what += f" ({note})"
    best_part = f"best {best.value:,.0f} {unit}, trial {best.number}" if best else "none yet"
    if elapsed is not None:
        best_part += f"; {clock(elapsed)} elapsed"
    return f"{candidate} trial {number}: {what} ({finished}/{n_trials} finished; {best_part})"


class Progress:
    """The per-trial progress report of a study: a `logging` line per finished trial with
    the best value so far in money, and a tqdm bar only when stderr is a terminal (CI logs
    get the lines, not a redrawn bar). Use as a context manager; call it as `on_trial`."""

    def __init__(self, candidate: str, n_trials: int, unit: str, stream: Any = None) -> None:
        self.candidate, self.n_trials, self.unit = candidate, n_trials, unit
        self.stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        self._stack = ExitStack()
        self.started = time.monotonic()

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        if not log.hasHandlers():  # nothing configured logging: the lines go to stderr
            handler = logging.StreamHandler(self.stream)
            handler.setFormatter(logging.Formatter("tune: %(message)s"))
            log.addHandler(handler)
            self._stack.callback(log.removeHandler, handler)
            # only then: once valuegate.logs configured them, -q / -v decide the level
            if log.level == logging.NOTSET:
                log.setLevel(logging.INFO)
                self._stack.callback(log.setLevel, logging.NOTSET)
        if show_progress(self.stream, log):  # a terminal, and not silenced by -q
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = self._stack.enter_context(
                tqdm(total=self.n_trials, desc=f"tune {self.candidate}", file=self.stream)
            )
            self._stack.enter_context(logging_redirect_tqdm(loggers=[log]))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def __call__(self, study: optuna.Study, number: int, state: str, value: float | None) -> None:
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
        finished = sum(t.state in FINISHED for t in trials)
        this = next((t for t in trials if t.number == number), None)
        took = None
        if this is not None and this.datetime_start and this.datetime_complete:
            took = (this.datetime_complete - this.datetime_start).total_seconds()
        note = this.user_attrs.get("stopped", "") if this is not None else ""
        log.info(
            progress_line(
                self.candidate,
                number,
                state,
                value,
                best,
                finished,
                self.n_trials,
                self.unit,
                took=took,
                elapsed=time.monotonic() - self.started,
                note=note,
            )
        )
        if self.bar is not None:
            self.bar.n = min(finished, self.n_trials)
            if best is not None:
                self.bar.set_postfix_str(f"best {best.value:,.0f} {self.unit}", refresh=False)
            self.bar.refresh()


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
