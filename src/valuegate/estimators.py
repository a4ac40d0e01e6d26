"""Early stopping for boosted candidates, on an inner validation part of the rows being
fitted (never the gate's validation rows).

`EarlyStoppingClassifier` / `EarlyStoppingRegressor` wrap an xgboost or
HistGradientBoosting estimator. `fit(X, y)` carves an inner validation part out of the
rows it is given: the LAST `validation_fraction` of them when the rows are in time order
(`time_ordered`: the training split is, when `data.split.method` is `time`; a random part
would interleave with the fitted rows and let the stopping point fit periods the model
will never meet again), else a seeded sample, stratified by the label for classifiers. The
inner estimator is fitted on the rest with early stopping on that part; with `refit`, it
is then fitted again on all the rows with the number of rounds found.

They are ordinary scikit-learn estimators (get_params / set_params / clone, `classes_`,
`predict_proba` / `predict`, `feature_importances_` when the inner one has it), so a
pipeline holding one cross-validates, tunes and is saved by skops like any other
(artifacts.TRUSTED_TYPES lists both classes).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.model_selection import train_test_split
from xgboost.callback import TrainingCallback

log = logging.getLogger(__name__)

# Below this many rows in the inner validation part (or with a class missing from either
# part) the stopping point would be noise: the inner estimator is fitted on all rows at
# its own cap instead, and a warning says so.
MIN_VALIDATION_ROWS = 20


class OverBudgetError(RuntimeError):
    """A fit stopped because its deadline passed (`Deadline`)."""


class Deadline(TrainingCallback):
    """An xgboost callback that stops a fit once `deadline` (a `time.monotonic()` value) has
    passed, after the boosting round in progress, by raising `OverBudgetError`: the fit is
    abandoned, not truncated (a model cut at an arbitrary round would be valued as if it
    were the trial's). Tuning sets it on each trial's fits (`tune.trial_timeout`); it is
    never on a fitted model that is saved."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if time.monotonic() > self.deadline:
            raise OverBudgetError(f"stopped after boosting round {epoch + 1}")
        return False


def set_deadline(pipeline: Any, deadline: float) -> bool:
    """Put a `Deadline` on the xgboost estimator of `pipeline` (unfitted; also inside an
    early-stopping wrapper), in place. False when the estimator has no per-round hook
    (scikit-learn's forests and HistGradientBoosting: their fits cannot be stopped from
    outside, so the caller checks the deadline between fits)."""
    final = pipeline.steps[-1][1]
    inner = final.estimator if isinstance(final, _EarlyStopping) else final
    if not type(inner).__module__.startswith("xgboost"):
        return False
    inner.set_params(callbacks=[Deadline(deadline)])
    return True


def inner_split(
    y: np.ndarray, fraction: float, time_ordered: bool, stratify: bool, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(fit positions, validation positions) of `len(y)` rows, or None when the
    validation part would be too small to stop on (see MIN_VALIDATION_ROWS)."""
    n = len(y)
    n_val = round(n * fraction)
    if n_val < MIN_VALIDATION_ROWS or n - n_val < MIN_VALIDATION_ROWS:
        return None
    positions = np.arange(n)
    if time_ordered:
        fit_idx, val_idx = positions[: n - n_val], positions[n - n_val :]
    else:
        labels = y if stratify else None
        if stratify and np.min(np.unique(y, return_counts=True)[1]) < 2:
            labels = None  # a class of one row cannot be split; a plain sample then
        fit_idx, val_idx = train_test_split(
            positions, test_size=n_val, random_state=seed, stratify=labels
        )
        fit_idx, val_idx = np.sort(fit_idx), np.sort(val_idx)
    if stratify and (len(np.unique(y[fit_idx])) < 2 or len(np.unique(y[val_idx])) < 2):
        return None
    return fit_idx, val_idx


def _rows(values: Any, positions: np.ndarray) -> Any:
    """Rows of an array, sparse matrix or frame (None stays None)."""
    if values is None:
        return None
    if hasattr(values, "iloc"):
        return values.iloc[positions]
    return values[positions]


def _kind(estimator: Any) -> str:
    module = type(estimator).__module__
    if module.startswith("xgboost"):
        return "xgboost"
    if "hist_gradient_boosting" in module:
        return "hist_gradient_boosting"
    raise TypeError(
        f"early stopping wraps xgboost or HistGradientBoosting estimators, not "
        f"{type(estimator).__name__}"
    )


class _EarlyStopping(BaseEstimator):
    """Shared fit logic; see the module docstring. Attributes after fit: `estimator_`
    (the fitted inner estimator), `n_rounds_` (boosting rounds it holds),
    `stopped_early_` (False when the inner split was too small and the cap was used)."""

    def __init__(
        self,
        estimator: Any = None,
        rounds: int = 50,
        validation_fraction: float = 0.15,
        time_ordered: bool = False,
        refit: bool = False,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.rounds = rounds
        self.validation_fraction = validation_fraction
        self.time_ordered = time_ordered
        self.refit = refit
        self.random_state = random_state

    def _stratify(self) -> bool:
        return False

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _EarlyStopping:  # noqa: N803
        kind = _kind(self.estimator)
        y = np.asarray(y)
        split = inner_split(
            y, self.validation_fraction, self.time_ordered, self._stratify(), self.random_state
        )
        if split is None:
            log.warning(
                "early stopping: %d rows leave too few for an inner validation part; "
                "fitting on all of them at the estimator's own round cap",
                len(y),
            )
            estimator = clone(self.estimator).fit(X, y, sample_weight=sample_weight)
            self.stopped_early_ = False
            self.n_rounds_ = _rounds_held(estimator, kind)
        else:
            fit_idx, val_idx = split
            X_fit, X_val = _rows(X, fit_idx), _rows(X, val_idx)  # noqa: N806
            w_fit, w_val = _rows(sample_weight, fit_idx), _rows(sample_weight, val_idx)
            estimator = clone(self.estimator)
            if kind == "xgboost":
                estimator.set_params(early_stopping_rounds=self.rounds)
                estimator.fit(
                    X_fit,
                    y[fit_idx],
                    sample_weight=w_fit,
                    eval_set=[(X_val, y[val_idx])],
                    sample_weight_eval_set=None if w_val is None else [w_val],
                    verbose=False,
                )
                best = int(estimator.best_iteration) + 1
            else:
                estimator.set_params(early_stopping=True, n_iter_no_change=self.rounds)
                estimator.fit(
                    X_fit,
                    y[fit_idx],
                    sample_weight=w_fit,
                    X_val=X_val,
                    y_val=y[val_idx],
                    sample_weight_val=w_val,
                )
                # It stops `rounds` after its best iteration and keeps them all.
                stopped = estimator.n_iter_ < estimator.max_iter
                best = max(1, estimator.n_iter_ - self.rounds) if stopped else estimator.n_iter_
            self.stopped_early_ = True
            if self.refit:
                size = "n_estimators" if kind == "xgboost" else "max_iter"
                estimator = clone(self.estimator).set_params(**{size: best})
                if kind == "hist_gradient_boosting":
                    estimator.set_params(early_stopping=False)
                estimator.fit(X, y, sample_weight=sample_weight)
                self.n_rounds_ = best
            elif kind == "xgboost":
                estimator = _first_rounds(estimator, best)
                self.n_rounds_ = best
            else:
                self.n_rounds_ = estimator.n_iter_
        self.estimator_ = estimator
        if hasattr(estimator, "n_features_in_"):
            self.n_features_in_ = estimator.n_features_in_
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.estimator_.predict(X)

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_


def _first_rounds(estimator: Any, rounds: int) -> Any:
    """A fitted xgboost model holding only its first `rounds` trees.

    Early stopping leaves `rounds` trees after the best one in the booster; the sklearn
    wrapper skips them when predicting, but the raw booster (the bundle's hot path scores
    with it) would not. Trimmed, every path scores the same trees.
    """
    trimmed = clone(estimator).set_params(n_estimators=rounds, early_stopping_rounds=None)
    trimmed.load_model(bytearray(estimator.get_booster()[:rounds].save_raw("ubj")))
    return trimmed


def _rounds_held(estimator: Any, kind: str) -> int:
    if kind == "xgboost":
        return int(estimator.get_booster().num_boosted_rounds())
    return int(estimator.n_iter_)


class EarlyStoppingClassifier(ClassifierMixin, _EarlyStopping):
    """A boosted classifier stopped early on an inner validation part (stratified)."""

    def _stratify(self) -> bool:
        return True

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> EarlyStoppingClassifier:  # noqa: N803
        super().fit(X, y, sample_weight)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.estimator_.predict_proba(X)


class EarlyStoppingRegressor(RegressorMixin, _EarlyStopping):
    """A boosted regressor stopped early on an inner validation part."""


def with_early_stopping(
    estimator: Any, task: str, settings: Any, time_ordered: bool, seed: int
) -> Any:
    """`estimator` wrapped for early stopping per `settings` (config.schema
    EarlyStoppingConfig), or unchanged when `settings` is None."""
    if settings is None:
        return estimator
    cls = EarlyStoppingClassifier if task == "binary" else EarlyStoppingRegressor
    return cls(
        estimator,
        rounds=settings.rounds,
        validation_fraction=settings.validation_fraction,
        time_ordered=time_ordered,
        refit=settings.refit,
        random_state=seed,
    )
