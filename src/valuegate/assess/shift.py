"""Train vs. test shift: a two-sample test per feature (Kolmogorov-Smirnov for numbers,
chi-squared for categories) and a classifier that tries to tell the splits apart.

With many rows every difference is "significant", so a feature is flagged only when the
test rejects at `alpha` AND the effect is large enough to matter (KS statistic or
Cramér's V at least `effect_warn`). Both run on samples of each split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import (
    FIT_THREADS,
    AssessData,
    fmt,
    model_matrix,
    sample_positions,
)
from valuegate.config.schema import AssessConfig


def numeric_shift(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    a, b = a.dropna().to_numpy(float), b.dropna().to_numpy(float)
    if len(a) < 2 or len(b) < 2:
        return 0.0, 1.0
    test = stats.ks_2samp(a, b)
    return float(test.statistic), float(test.pvalue)


def categorical_shift(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """(Cramér's V, p-value) of the split-by-level table; missing is a level."""
    table = pd.crosstab(
        np.r_[np.zeros(len(a), int), np.ones(len(b), int)],
        pd.concat([a, b], ignore_index=True).astype(object).fillna("<missing>").to_numpy(),
    )
    if table.shape[1] < 2:
        return 0.0, 1.0
    chi2, p, _, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    v = float(np.sqrt(chi2 / table.to_numpy().sum()))  # 2 rows: min(r, c) - 1 = 1
    return v, float(p)


def adversarial_auc(
    data: AssessData, train_rows: np.ndarray, test_rows: np.ndarray, n_folds: int, seed: int
) -> float:
    """Cross-validated ROC AUC of a classifier telling train rows from test rows
    (0.5: indistinguishable)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    frames = [data.splits["train"].iloc[train_rows], data.splits["test"].iloc[test_rows]]
    matrix, mask = model_matrix(frames, data.numeric, data.categorical)
    is_test = np.r_[np.zeros(len(train_rows), int), np.ones(len(test_rows), int)]
    model = HistGradientBoostingClassifier(
        max_iter=50,
        categorical_features=mask if mask.any() else None,
        early_stopping=False,
        random_state=seed,
    )
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    with threadpool_limits(FIT_THREADS, user_api="openmp"):
        scores = cross_val_predict(model, matrix, is_test, cv=n_folds, method="predict_proba")
    scores = scores[:, 1]
    return float(roc_auc_score(is_test, scores))


def check_shift(
    data: AssessData, config: AssessConfig, rng: np.random.Generator, seed: int
) -> CheckResult:
    result = CheckResult()
    cfg = config.shift
    train, test = data.splits["train"], data.splits["test"]
    train_rows = sample_positions(len(train), config.sample_rows, rng)
    test_rows = sample_positions(len(test), config.sample_rows, rng)
    a, b = train.iloc[train_rows], test.iloc[test_rows]
    effects = {}
    for column in data.features:
        numeric = column in data.numeric
        effect, p = (numeric_shift if numeric else categorical_shift)(a[column], b[column])
        effects[column] = effect
        if p < cfg.alpha and effect >= cfg.effect_warn:
            name = "KS statistic" if numeric else "Cramér's V"
            detail = (
                f"train median {fmt(a[column].median(), '.4g')}, test median "
                f"{fmt(b[column].median(), '.4g')}"
                if numeric
                else "level shares differ"
            )
            result.findings.append(
                Finding(
                    id=f"shift:{column}",
                    severity="warn",
                    title=f"{column!r} is distributed differently in test than in train "
                    f"({name} {effect:.2f}, p = {p:.2g}; {detail}): test value may not "
                    "predict production value.",
                    action=f"find out why {column!r} changed (time, source, a unit change); "
                    "if production looks like test, train on more recent data",
                    evidence={"column": column, "effect": effect, "p_value": p, "test": name},
                )
            )
    auc = adversarial_auc(data, train_rows, test_rows, min(config.n_folds, 5), seed)
    result.figures.update(adversarial_auc=auc, max_shift_effect=max(effects.values(), default=0))
    result.charts["shift"] = {
        "effects": dict(sorted(effects.items(), key=lambda kv: -kv[1])),
        "warn": cfg.effect_warn,
        "adversarial_auc": auc,
    }
    if len(train_rows) < len(train) or len(test_rows) < len(test):
        result.sampling.append(
            f"Shift: per-feature tests and the train-vs-test classifier on {len(train_rows):,} "
            f"train and {len(test_rows):,} test rows (random samples)."
        )
    if auc >= cfg.adversarial_auc_warn:
        result.findings.append(
            Finding(
                id="shift:adversarial",
                severity="warn",
                title=f"A classifier tells test rows from train rows with ROC AUC {auc:.2f} "
                "(0.5 would mean they look alike): the test split is not like the training data.",
                action="look at the features flagged for shift; a time split does this when "
                "the world changes, a random split should not",
                evidence={"auc": auc, "warn_at": cfg.adversarial_auc_warn},
            )
        )
    return result
