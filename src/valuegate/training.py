"""Fit one configured model on the training split, choose its operating point out of
sample, and score the other splits.

Every model (baseline, candidate, tuned) is also cross-fitted on the training split
(`gate.cross_fit`, folds from `valuegate.folds`): its out-of-fold scores are where its
calibration (binary) is fitted and its operating point (threshold / offset) is chosen,
once. Validation and test then only value the model at that fixed point, so the rows that
judge a model never chose its threshold (docs/gate.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from valuegate.business import fixed_operating_point, value_model
from valuegate.calibration import apply_calibration, fit_calibration
from valuegate.config.schema import Config, ModelSpec
from valuegate.data import Schema, target_vector
from valuegate.distributed.train import fits_on_dask
from valuegate.errors import DataError
from valuegate.folds import fold_kind, make_folds
from valuegate.models import build_pipeline, fit_pipeline, predict_scores
from valuegate.resources import apply_threads, guard_fit

SCORED_SPLITS = ("valid", "test")

log = logging.getLogger(__name__)


@dataclass
class FittedModel:
    name: str
    pipeline: Pipeline
    predictions: pd.DataFrame  # columns: split, row, score (calibrated for binary tasks)
    fit_seconds: float
    info: dict[str, Any]  # fit.json: incl. "operating_point" and "calibration"
    cross_fit_seconds: float = 0.0


def cross_fit_rows(n: int, max_rows: int | None, time_ordered: bool, seed: int) -> np.ndarray:
    """Positions (sorted) of the training rows to cross-fit on: all of them, or at most
    `max_rows` (the most recent ones when the rows are in time order, which is what the
    model will meet next; else a seeded random sample)."""
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    if time_ordered:
        return np.arange(n - max_rows, n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def cross_fit_scores(
    key: str,
    spec: ModelSpec,
    config: Config,
    schema: Schema,
    train: pd.DataFrame,
    y: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Out-of-fold raw scores on the training split.

    Returns (positions (m,) of the training rows that got an out-of-fold score, their raw
    scores (m,), the fold kind). Forward-chaining folds never score the first block; a
    fold whose training part holds one class (binary) is skipped, its rows unscored.
    """
    time_ordered = config.data.split.method == "time"
    rows = cross_fit_rows(len(train), config.gate.cross_fit.max_rows, time_ordered, config.seed)
    groups = train[schema.id_column].to_numpy()[rows] if schema.id_column else None
    kind = fold_kind(time_ordered, groups)
    folds = make_folds(
        y[rows],
        schema.task,
        config.gate.cross_fit.folds,
        config.seed,
        time_ordered=time_ordered,
        groups=groups,
    )
    features = train[schema.features]
    positions, scores = [], []
    for fold_train, fold_test in folds:
        fit_rows, score_rows = rows[fold_train], rows[fold_test]
        if schema.task == "binary" and len(np.unique(y[fit_rows])) < 2:
            log.warning("%s: a cross-fitting fold trains on one class; its rows are skipped", key)
            continue
        pipeline = build_pipeline(
            key, spec, schema.task, schema.numeric, schema.categorical, config.seed, time_ordered,
            train_rows=len(train),  # encoded as the final fit is (models.categorical_encoding)
        )  # fmt: skip
        fit_pipeline(pipeline, features.iloc[fit_rows], y[fit_rows])
        positions.append(score_rows)
        scores.append(predict_scores(pipeline, features.iloc[score_rows], schema.task))
    if not positions:
        raise DataError(
            f"{key}: no cross-fitting fold of the training split holds both classes of "
            f"{config.data.target!r}: the operating point cannot be chosen out of sample. "
            "Use more training rows (data.split.train) or fewer gate.cross_fit.folds."
        )
    order = np.concatenate(positions)
    return order, np.concatenate(scores), kind


def fit_model(
    name: str,
    role: str,
    spec: ModelSpec,
    config: Config,
    schema: Schema,
    splits: dict[str, pd.DataFrame],
) -> FittedModel:
    """Build the pipeline for `spec`, fit it on `splits['train']`, cross-fit it there for
    its calibration and operating point, and score valid and test (calibrated)."""
    key = f"{'baseline' if role == 'baseline' else 'model'}.{name}"
    # The machine budget first: threads for every library, and a fit that would not fit
    # in memory stops here, naming the column (valuegate.resources).
    apply_threads(config.resources)
    # With resources.dask_scheduler an xgboost fit runs on the Dask cluster
    # (valuegate.distributed): only the cross-fit below runs here, on its capped rows.
    on_dask = fits_on_dask(config.resources, spec)
    if not on_dask:
        guard_fit(key, spec, splits["train"], schema.numeric, schema.categorical, config.resources)
    # The training split is in time order when the split is by time (early stopping then
    # stops on its last rows).
    time_ordered = config.data.split.method == "time"
    train = splits["train"]
    y = target_vector(train, config.data)
    started = time.perf_counter()
    engine: dict[str, Any] = {}
    if on_dask:
        from valuegate.distributed.train import fit_frame_on_dask

        fitted = fit_frame_on_dask(
            key, spec, config.data, schema.numeric, schema.categorical, config.seed, train,
            config.resources, time_ordered,
        )  # fmt: skip
        pipeline, engine = fitted.pipeline, {"fitted_on": fitted.info}
    else:
        pipeline = build_pipeline(
            key, spec, schema.task, schema.numeric, schema.categorical, config.seed, time_ordered,
            train_rows=len(train),
        )  # fmt: skip
        fit_pipeline(pipeline, train[schema.features], y)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    positions, raw_oof, kind = cross_fit_scores(key, spec, config, schema, train, y)
    cross_fit_seconds = time.perf_counter() - started
    y_oof = y[positions]
    method = config.gate.calibration if schema.task == "binary" else "none"
    calibration = fit_calibration(method, raw_oof, y_oof)
    oof = apply_calibration(calibration, raw_oof)
    amount = (
        train[schema.amount_column].to_numpy(float)[positions] if schema.amount_column else None
    )
    model = value_model(config)
    point = fixed_operating_point(
        model,
        y_oof,
        oof,
        amount,
        config.constraints,
        n_resamples=config.gate.cross_fit.choice_resamples,
        seed=config.seed,
    )
    _settle_on_break_even(model, oof, point, calibration)
    point["chosen_on"] = (
        f"out-of-fold scores of {len(positions)} training rows ({kind} folds, "
        f"{config.gate.cross_fit.folds})"
    )
    point["fold_kind"] = kind
    point.update(_agreement(model, y_oof, oof, point, amount, config.constraints))

    parts = []
    for split in SCORED_SPLITS:
        frame = splits[split]
        scores = apply_calibration(
            calibration, predict_scores(pipeline, frame[schema.features], schema.task)
        )
        parts.append(pd.DataFrame({"split": split, "row": np.arange(len(frame)), "score": scores}))
    info = {
        "name": name,
        "role": role,
        "estimator": spec.estimator,
        "params": spec.params,
        "train_rows": len(train),
        "operating_point": point,
        "calibration": calibration,
        **engine,
    }
    return FittedModel(
        name, pipeline, pd.concat(parts, ignore_index=True), fit_seconds, info, cross_fit_seconds
    )


def _settle_on_break_even(
    model: Any, probability: np.ndarray, point: dict[str, Any], calibration: dict[str, Any]
) -> None:
    """Move a threshold chosen on calibrated scores to the objective's break-even
    probability when that flags exactly the same out-of-fold rows (so it is worth exactly
    as much there): between two out-of-fold scores the data cannot tell thresholds apart,
    and at the break-even probability every new case's decision agrees with its expected
    value. In place; no-op for offsets, uncalibrated scores or amount-dependent values."""
    break_even = model.break_even_probability()
    if break_even is None or calibration.get("method") in (None, "none") or point["acts"]:
        return
    if np.array_equal(probability >= point["value"], probability >= break_even):
        point["value"] = break_even


def _agreement(
    model: Any,
    y: np.ndarray,
    probability: np.ndarray,
    point: dict[str, Any],
    amount: np.ndarray | None,
    constraints: Any,
) -> dict[str, Any]:
    """Do the calibrated score, the threshold and the expected value per decision agree?

    On the out-of-fold rows (n,): how many cases the threshold flags although not acting has
    the higher expected value (and the reverse), and whether the objective's constraints
    moved the threshold away from the value-maximising one (then such cases are expected).
    Regression: nothing to report (no act / not-act decision).
    """
    gain = model.decision_gain(probability, amount)
    if gain is None:
        return {}
    flagged = probability >= point["value"]
    free = model.choose_point(y, probability, amount).value if constraints else point["value"]
    return {
        "break_even_probability": model.break_even_probability(),
        "flagged_against_expected_value": int(np.sum(flagged & (gain < 0))),
        "kept_against_expected_value": int(np.sum(~flagged & (gain > 0))),
        "moved_by_constraints": bool(free != point["value"]),
    }
