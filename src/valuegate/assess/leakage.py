"""Target leakage: a single feature that predicts the target almost perfectly on its own,
and columns the user declares as recorded after the outcome.

The single-feature model is a cross-validated binned target mean: numbers are cut at
their quantiles (missing is a bin of its own, so a missingness pattern that gives the
target away is caught too), categories are their own bins; each row is predicted from
the other folds only. Scored by ROC AUC (binary) or R2 (regression) on a sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData, encode_codes, sample_positions
from valuegate.config.messages import nearest
from valuegate.config.schema import AssessConfig
from valuegate.errors import DataError

N_BINS = 32
SMOOTHING = 1.0  # pseudo-rows of the overall mean in each bin's estimate


def binned_codes(column: pd.Series, numeric: bool) -> np.ndarray:
    """Bin index per row, 0..k-1; missing values get a bin of their own."""
    if numeric:
        values = column.to_numpy(float)
        finite = values[~np.isnan(values)]
        if len(finite) == 0:
            return np.zeros(len(values), dtype=np.int64)
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
        codes = np.searchsorted(edges, values, side="right")
        codes[np.isnan(values)] = len(edges) + 1
        return codes.astype(np.int64)
    codes = encode_codes(column)
    codes[codes < 0] = codes.max() + 1
    return codes


def out_of_fold_bin_means(codes: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each row's prediction: the target mean of its bin among the rows of other folds."""
    k = int(codes.max()) + 1
    total_sum = np.bincount(codes, weights=y, minlength=k)
    total_n = np.bincount(codes, minlength=k).astype(float)
    prediction = np.empty(len(y))
    for fold in np.unique(folds):
        inside = folds == fold
        fold_sum = np.bincount(codes[inside], weights=y[inside], minlength=k)
        fold_n = np.bincount(codes[inside], minlength=k)
        prior = (y.sum() - y[inside].sum()) / max(1, (~inside).sum())
        sums, counts = total_sum - fold_sum, total_n - fold_n
        means = (sums + SMOOTHING * prior) / (counts + SMOOTHING)
        prediction[inside] = means[codes[inside]]
    return prediction


def single_feature_scores(
    data: AssessData, positions: np.ndarray, n_folds: int, rng: np.random.Generator
) -> dict[str, float]:
    """Cross-validated AUC (binary) or R2 (regression) of each feature alone."""
    train = data.splits["train"]
    y = data.y("train")[positions].astype(float)
    folds = rng.integers(0, n_folds, size=len(positions))
    scores = {}
    for column in data.features:
        codes = binned_codes(train[column].iloc[positions], column in data.numeric)
        predicted = out_of_fold_bin_means(codes, y, folds)
        if data.task == "binary":
            scores[column] = float(roc_auc_score(y, predicted))
        else:
            total = float(((y - y.mean()) ** 2).sum())
            scores[column] = 1.0 - float(((y - predicted) ** 2).sum()) / total if total else 0.0
    return scores


def check_leakage(data: AssessData, config: AssessConfig, rng: np.random.Generator) -> CheckResult:
    result = CheckResult()
    cfg = config.leakage
    train = data.splits["train"]
    for i, column in enumerate(cfg.post_outcome_columns):
        if column not in train.columns:
            hint = nearest(column, train.columns)
            if hint:  # a typo: the column meant is still a feature and may leak
                raise DataError(
                    f"assess.leakage.post_outcome_columns[{i}]: column {column!r} is not in "
                    f"the prepared data (did you mean {hint!r}?)."
                )
            # Dropped already (data.features.drop, as the block's action advises): fine.
            result.findings.append(
                Finding(
                    id=f"post_outcome:{column}",
                    severity="info",
                    title=f"{column!r} is declared as recorded after the outcome and is not in "
                    "the prepared data (dropped, e.g. by data.features.drop): it cannot leak.",
                    action="nothing; if the name is misspelt, correct it in "
                    "assess.leakage.post_outcome_columns",
                    evidence={"column": column, "in_data": False},
                )
            )
            continue
        result.findings.append(
            Finding(
                id=f"post_outcome:{column}",
                severity="block" if column in data.features else "info",
                title=f"{column!r} is declared as recorded after the outcome"
                + (
                    ": a model would use the future to predict it."
                    if column in data.features
                    else "; it is not a feature, so it cannot leak."
                ),
                action=f"drop it: add {column!r} to data.features.drop (or "
                "assess.remedies.drop_leaky_columns: true)",
                evidence={"column": column, "declared_in": "assess.leakage.post_outcome_columns"},
            )
        )
    y = data.y("train")
    positions = sample_positions(
        len(train), config.sample_rows, rng, y if data.task == "binary" else None
    )
    scores = single_feature_scores(data, positions, config.n_folds, rng)
    metric = "auc" if data.task == "binary" else "r2"
    warn, block = getattr(cfg, f"{metric}_warn"), getattr(cfg, f"{metric}_block")
    label = "ROC AUC" if metric == "auc" else "R2"
    result.figures[f"max_single_feature_{metric}"] = max(scores.values(), default=None)
    result.charts["single_feature"] = {
        "metric": label,
        "scores": dict(sorted(scores.items(), key=lambda kv: -kv[1])),
        "warn": warn,
        "block": block,
    }
    if len(positions) < len(train):
        result.sampling.append(
            f"Single-feature leakage scores: {len(positions):,} of {len(train):,} training "
            f"rows (stratified sample), {config.n_folds}-fold cross-validated."
        )
    for column, score in scores.items():
        if score < warn or column in cfg.post_outcome_columns:
            continue
        severe = score >= block
        result.findings.append(
            Finding(
                id=f"target_leakage:{column}",
                severity="block" if severe else "warn",
                title=f"{column!r} alone predicts {data.target!r} with cross-validated {label} "
                f"{score:.3f}"
                + (
                    ": almost perfectly, which real features rarely do. It is probably "
                    "recorded after the outcome or derived from it."
                    if severe
                    else ": very strong for one feature; check it is known at decision time."
                ),
                action=f"if {column!r} is not known when the decision is made, drop it "
                "(data.features.drop, or assess.remedies.drop_leaky_columns: true); if it "
                "is, accept this finding",
                evidence={"column": column, metric: score, "warn_at": warn, "block_at": block},
            )
        )
    return result
