"""Measured costs of each model (fit time, latency per row, parts): run-to-run noise, so
only `valuegate report --timings` (a hand run, into an untracked file) measures them; the
`report` stage's page never holds them."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

LATENCY_ROWS = 50  # at most this many rows scored one at a time for the latency figure
MIN_LATENCY_ROWS = 5  # at least this many,
LATENCY_BUDGET = 2.0  # then stop once this many seconds are spent


def parts(pipeline: Any) -> str:
    """What the fitted estimator is made of: trees and nodes, or coefficients."""
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    if hasattr(estimator, "estimators_") and hasattr(estimator.estimators_[0], "tree_"):
        nodes = sum(int(t.tree_.node_count) for t in estimator.estimators_)
        return f"{len(estimator.estimators_):,} trees, {nodes:,} nodes"
    if hasattr(estimator, "n_trees_per_iteration_"):  # HistGradientBoosting*
        # scikit-learn has no public node count for these: the trees only
        trees = int(estimator.n_iter_) * int(estimator.n_trees_per_iteration_)
        return f"{trees:,} trees"
    if hasattr(estimator, "get_booster"):  # xgboost
        frame = estimator.get_booster().trees_to_dataframe()
        return f"{frame['Tree'].nunique():,} trees, {len(frame):,} nodes"
    if hasattr(estimator, "coef_"):
        return (
            f"{int(np.size(estimator.coef_)) + int(np.size(estimator.intercept_)):,} coefficients"
        )
    return "1 constant" if type(estimator).__name__.startswith("Dummy") else "n/a"


def measure(pipeline: Any, train_x: pd.DataFrame, train_y: np.ndarray, rows: pd.DataFrame):
    """{fit_seconds, latency_ms_per_row, size}: a clone of `pipeline` refit once on the
    training rows; the mean time (ms) to score one of `rows`, scored one at a time
    (LATENCY_ROWS at most; stops after LATENCY_BUDGET s once MIN_LATENCY_ROWS are done)."""
    from sklearn.base import clone

    started = time.perf_counter()
    clone(pipeline).fit(train_x, train_y)
    fit_seconds = time.perf_counter() - started
    sample = rows.head(LATENCY_ROWS)
    score = pipeline.predict_proba if hasattr(pipeline, "predict_proba") else pipeline.predict
    score(sample.iloc[:1])  # warm-up: the first call pays one-off costs
    started = time.perf_counter()
    scored = 0
    for i in range(len(sample)):
        score(sample.iloc[i : i + 1])
        scored += 1
        # A slow model on a busy machine: a few rows tell its latency well enough.
        if scored >= MIN_LATENCY_ROWS and time.perf_counter() - started > LATENCY_BUDGET:
            break
    latency = (time.perf_counter() - started) / max(1, scored) * 1000.0
    return {"fit_seconds": fit_seconds, "latency_ms_per_row": latency, "size": parts(pipeline)}
