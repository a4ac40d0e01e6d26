"""Label noise (binary tasks): rows whose given label is implausible under out-of-fold
predicted probabilities, by confident learning (cleanlab).

A histogram gradient boosting classifier predicts each sampled training row from the
other folds; cleanlab's `find_label_issues` flags rows whose given label gets less
probability than the per-class confidence threshold, ranked by self-confidence (the
probability of the given label, lowest first)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import (
    FIT_THREADS,
    AssessData,
    model_matrix,
    plural,
    sample_positions,
)
from valuegate.config.schema import AssessConfig


def out_of_fold_probabilities(
    matrix: np.ndarray, mask: np.ndarray, y: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """P(class) per row, shape (n, 2), each row predicted by a model that never saw it."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    probabilities = np.zeros((len(y), 2))
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_rows, predict_rows in folds.split(matrix, y):
        # Shallow and slow-learning: overconfident probabilities would flag hard but
        # correctly labelled rows as noise.
        model = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            categorical_features=mask if mask.any() else None,
            early_stopping=False,
            random_state=seed,
        )
        with threadpool_limits(FIT_THREADS, user_api="openmp"):
            model.fit(matrix[fit_rows], y[fit_rows])
            probabilities[predict_rows] = model.predict_proba(matrix[predict_rows])
    return probabilities


def check_label_noise(
    data: AssessData,
    config: AssessConfig,
    rng: np.random.Generator,
    seed: int,
    exclude: Collection[str] = (),
) -> CheckResult:
    """`exclude`: columns left out of the model, i.e. blocking leaks. A column derived from
    the recorded label explains every label, wrong ones included, and would hide them."""
    result = CheckResult()
    if data.task != "binary":
        result.findings.append(
            Finding(
                id="label_noise:skipped",
                severity="info",
                title="Label noise is not checked: confident learning needs class labels, and "
                f"{data.target!r} is a regression target.",
                action="nothing; outliers of the target show in the model's residuals",
            )
        )
        return result
    from cleanlab.filter import find_label_issues

    train = data.splits["train"]
    y_all = data.y("train")
    positions = sample_positions(len(train), config.sample_rows, rng, y_all)
    y = y_all[positions].astype(int)
    numeric = [c for c in data.numeric if c not in exclude]
    categorical = [c for c in data.categorical if c not in exclude]
    matrix, mask = model_matrix([train.iloc[positions]], numeric, categorical)
    n_folds = min(config.n_folds, int(np.bincount(y).min()))
    probabilities = out_of_fold_probabilities(matrix, mask, y, max(2, n_folds), seed)
    ranked = find_label_issues(
        labels=y,
        pred_probs=probabilities,
        return_indices_ranked_by="self_confidence",
        n_jobs=1,  # cleanlab's multiprocessing would start processes for a fast sort
    )
    flagged = positions[ranked]
    share = len(ranked) / len(positions)
    self_confidence = probabilities[np.arange(len(y)), y]
    result.figures.update(label_noise_flagged=len(ranked), label_noise_share=share)
    result.charts["label_noise"] = {
        "self_confidence": self_confidence.tolist(),
        "flagged": np.isin(np.arange(len(y)), ranked).tolist(),
    }
    result.remedy_rows["label_noise:suspected"] = {"train": np.sort(flagged)}
    if len(positions) < len(train):
        result.sampling.append(
            f"Label noise: out-of-fold probabilities for {len(positions):,} of {len(train):,} "
            f"training rows (stratified sample, {max(2, n_folds)} folds); only sampled rows "
            "can be flagged."
        )
    if len(ranked) == 0:
        return result
    warn = share >= config.label_noise.warn_share
    result.findings.append(
        Finding(
            id="label_noise:suspected",
            severity="warn" if warn else "info",
            title=f"{plural(len(ranked), 'training row', 'training rows')} ({share:.1%} of "
            f"those checked) carr{'ies' if len(ranked) == 1 else 'y'} a label "
            "that a cross-validated model finds implausible: the model confidently predicts "
            "the other class"
            + (
                "; that many suggests noisy labelling or a missing feature."
                if warn
                else f"; below the {config.label_noise.warn_share:.0%} that warns, as usual "
                "when the features explain the label only in part."
            ),
            action="review the most suspicious rows (listed first); "
            "assess.remedies.drop_noisy_labels: true drops the flagged rows from train",
            evidence={
                "flagged": len(ranked),
                "checked": len(positions),
                "share": share,
                "method": "cleanlab.filter.find_label_issues on out-of-fold "
                "HistGradientBoosting probabilities, ranked by self-confidence",
                "left_out_as_leaks": sorted(exclude),
                "lowest_self_confidence": [
                    round(float(v), 4) for v in self_confidence[ranked[:10]]
                ],
            },
            example_rows={"train": data.row_ids("train", flagged[:20])},
        )
    )
    return result
