"""Target leakage: a single feature that predicts the target almost perfectly on its own,
columns the user declares as recorded after the outcome, and columns that leak only in
combination (pairs of time columns, and rounds of a quick model on every feature with
drop-column importance: see `assess.combined`).

The single-feature model is a cross-validated binned target mean: numbers are cut at
their quantiles (missing is a bin of its own, so a missingness pattern that gives the
target away is caught too), categories are their own bins; each row is predicted from
its fold's training rows only (folds from `valuegate.folds.make_folds`, as every
cross-validation here). Scored by ROC AUC (binary) or R2 (regression) on a sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuegate.assess.combined import MIN_FALL, QuickModel, score, time_pairs
from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData, encode_codes, fmt
from valuegate.config.messages import nearest
from valuegate.config.schema import AssessConfig
from valuegate.errors import DataError

N_BINS = 32
SMOOTHING = 1.0  # pseudo-rows of the overall mean in each bin's estimate


def binned_codes(column: pd.Series, numeric: bool) -> np.ndarray:
    """Bin index per row, 0..k-1; missing values get a bin of their own."""
    if numeric:
        values = column.to_numpy(float)
        # Infinities are outliers, not bins of their own: they sort into the end bins.
        values = np.clip(values, np.finfo(float).min, np.finfo(float).max)
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


def out_of_fold_bin_means(
    codes: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Each tested row's prediction: the target mean of its bin among its fold's training
    rows (NaN for rows no fold tests: the first block of forward-chaining folds)."""
    k = int(codes.max()) + 1 if len(codes) else 1
    prediction = np.full(len(y), np.nan)
    for fit_rows, test_rows in folds:
        sums = np.bincount(codes[fit_rows], weights=y[fit_rows], minlength=k)
        counts = np.bincount(codes[fit_rows], minlength=k)
        prior = float(y[fit_rows].mean()) if len(fit_rows) else 0.0
        means = (sums + SMOOTHING * prior) / (counts + SMOOTHING)
        prediction[test_rows] = means[codes[test_rows]]
    return prediction


def values_score(
    values: pd.Series | np.ndarray, numeric: bool, y: np.ndarray, folds, task: str
) -> float:
    """Cross-validated ROC AUC (binary) or R2 (regression) of one column (or one derived
    column, e.g. a pair difference) alone; 0.5 / 0.0 when undefined."""
    codes = binned_codes(pd.Series(values), numeric)
    value = score(y, out_of_fold_bin_means(codes, y, folds), task)
    if value is None:
        return 0.5 if task == "binary" else 0.0
    return value


def single_feature_scores(data: AssessData, quick: QuickModel) -> dict[str, float]:
    """Cross-validated AUC (binary) or R2 (regression) of each feature alone."""
    train = data.splits["train"]
    return {
        column: values_score(
            train[column].iloc[quick.positions],
            column in data.numeric,
            quick.y,
            quick.folds,
            data.task,
        )
        for column in data.features
    }


def check_leakage(data: AssessData, config: AssessConfig, quick: QuickModel) -> CheckResult:
    """Every leak check on the sample and folds of `quick`. Leaks found are set aside and
    the rest checked again by the quick model, round after round (at most
    `leakage.max_rounds`), so that one run names every leaking column; the rounds are in
    `figures['leakage_rounds']`."""
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
    positions = quick.positions
    scores = single_feature_scores(data, quick)
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
            f"Leakage (single features, time pairs, the quick model) and the honest "
            f"estimate: {len(positions):,} of {len(train):,} training rows (stratified "
            f"sample), {len(quick.folds)} {quick.fold_kind} folds."
        )
    for column, value in scores.items():
        if value < warn or column in cfg.post_outcome_columns:
            continue
        severe = value >= block
        result.findings.append(
            Finding(
                id=f"target_leakage:{column}",
                severity="block" if severe else "warn",
                title=f"{column!r} alone predicts {data.target!r} with cross-validated {label} "
                f"{value:.3f}"
                + (
                    ": almost perfectly, which real features rarely do. It is probably "
                    "recorded after the outcome or derived from it."
                    if severe
                    else ": very strong for one feature; check it is known at decision time."
                ),
                action=f"if {column!r} is not known when the decision is made, drop it "
                "(data.features.drop, or assess.remedies.drop_leaky_columns: true); if it "
                "is, accept this finding",
                evidence={"column": column, metric: value, "warn_at": warn, "block_at": block},
            )
        )
    set_aside = {
        f.subject
        for f in result.findings
        if f.kind in ("target_leakage", "post_outcome") and f.severity == "block"
    }
    train_sample = train.iloc[positions]
    pairs = time_pairs(train_sample, data.features) if cfg.time_pairs else []
    for a, b, kind in pairs:
        if a in set_aside or b in set_aside:
            continue
        pair_score = values_score(
            _difference(train_sample, a, b, kind), True, quick.y, quick.folds, data.task
        )
        apart = max(scores[a], scores[b])
        if pair_score < warn or pair_score - apart < cfg.pair_min_gain:
            continue
        severe = pair_score >= block
        result.findings.append(
            Finding(
                id=f"combined_leakage:{a}+{b}",
                severity="block" if severe else "warn",
                title=f"{a!r} + {b!r} give {data.target!r} away together: their difference "
                f"({_UNITS[kind]}) reaches cross-validated {label} {pair_score:.3f}, the "
                f"columns apart {fmt(scores[a], '.3f')} and {fmt(scores[b], '.3f')}"
                + (
                    ". One of them is probably recorded after the outcome (an actual time "
                    "next to a scheduled one)."
                    if severe
                    else ": check both are known when the decision is made."
                ),
                action="drop the one recorded after the outcome: add it to "
                "data.features.drop (assess.remedies.drop_leaky_columns: true drops both, "
                "not knowing which); if both are known at decision time, accept this finding",
                evidence={
                    "columns": [a, b],
                    "drop": [a, b],
                    "kind": kind,
                    metric: pair_score,
                    f"{metric}_apart": {a: scores[a], b: scores[b]},
                    "warn_at": warn,
                    "block_at": block,
                },
            )
        )
        if severe:
            set_aside |= {a, b}
    if cfg.model_check:
        _model_rounds(data, config, quick, pairs, set_aside, result, scores)
    return result


_UNITS = {"clock": "in minutes, modulo midnight", "date": "in days", "number": "as numbers"}


def _difference(frame: pd.DataFrame, a: str, b: str, kind: str) -> np.ndarray:
    from valuegate.assess.combined import pair_difference

    return pair_difference(frame[a], frame[b], kind)


def _model_rounds(
    data: AssessData,
    config: AssessConfig,
    quick: QuickModel,
    pairs: list[tuple[str, str, str]],
    set_aside: set[str],
    result: CheckResult,
    scores: dict[str, float],
) -> None:
    """Rounds of the quick model on the features not set aside: while it reaches the
    block level, the culprit is the feature whose removal brings it below the block level
    at the least cost (the highest score left: the least the models lose), else the one
    whose removal lowers it most (redundant leaks go one per round); it is set aside and
    the rest checked again."""
    cfg = config.leakage
    metric = "auc" if data.task == "binary" else "r2"
    label = "ROC AUC" if metric == "auc" else "R2"
    block = getattr(cfg, f"{metric}_block")
    rounds: list[dict] = []
    set_aside = set(set_aside)
    culprit = None
    for number in range(1, cfg.max_rounds + 2):
        features = [f for f in data.features if f not in set_aside]
        if not features:
            break
        round_pairs = [p for p in pairs if p[0] not in set_aside and p[1] not in set_aside]
        reached = quick.evaluate(features, round_pairs)
        record: dict = {
            "round": number,
            "features": len(features),
            "set_aside_before": sorted(set_aside),
            metric: reached,
        }
        rounds.append(record)
        if reached is None or reached < block:
            break
        if number > cfg.max_rounds:
            result.findings.append(
                Finding(
                    id="combined_leakage:quick_model",
                    severity="block",
                    title=f"After {cfg.max_rounds} leak rounds a quick model on the "
                    f"{len(features)} remaining features still reaches cross-validated "
                    f"{label} {reached:.3f}, at or above the {block:g} that blocks: more "
                    "columns leak than the rounds could set aside.",
                    action="drop the columns recorded after the outcome (data.features.drop), "
                    "or raise assess.leakage.max_rounds",
                    evidence={
                        "drop": [],  # no column to drop: it stays blocking
                        metric: reached,
                        "rounds": cfg.max_rounds,
                        "block_at": block,
                    },
                )
            )
            break
        full, without = quick.drop_column(features, round_pairs, cfg.culprit_candidates)
        record["without"] = without
        below = {f: v for f, v in without.items() if v is not None and v < block}
        if below:
            culprit = max(below, key=below.__getitem__)
        else:
            falls = {f: (full or 0.0) - v for f, v in without.items() if v is not None}
            culprit = max(falls, key=falls.__getitem__) if falls else None
            if culprit is not None and falls[culprit] < MIN_FALL:
                culprit = None
        if culprit is None:
            result.findings.append(
                Finding(
                    id="combined_leakage:quick_model",
                    severity="warn",
                    title=f"A quick model on all {len(features)} features reaches "
                    f"cross-validated {label} {reached:.3f}, at or above the {block:g} that "
                    "would block, yet removing any one of its most important features "
                    f"changes it by less than {MIN_FALL}: either {data.target!r} is this "
                    "predictable, or a leak is spread over many columns.",
                    action="look at the most important features (evidence); if none is "
                    "recorded after the outcome, accept this finding",
                    evidence={"drop": [], metric: reached, "without": without, "block_at": block},
                )
            )
            break
        record["culprit"] = culprit
        partners = [f for f, v in without.items() if f != culprit and v is not None and v < block]
        left = without[culprit]
        result.findings.append(
            Finding(
                id=f"combined_leakage:{culprit}",
                severity="block",
                title=f"{culprit!r} gives {data.target!r} away in combination: a quick model "
                f"on {len(features)} features reaches cross-validated {label} {reached:.3f}, "
                f"without {culprit!r} {fmt(left, '.3f')}; {culprit!r} alone "
                f"{fmt(scores.get(culprit, float('nan')), '.3f')}"
                + (
                    f". Removing {_names(partners)} also brings it below {block:g}: "
                    f"{culprit!r} leaks together with {'it' if len(partners) == 1 else 'them'}, "
                    f"and is the one whose removal costs the least."
                    if partners
                    else "."
                ),
                action=f"if {culprit!r} is not known when the decision is made, drop it "
                "(data.features.drop, or assess.remedies.drop_leaky_columns: true); if it "
                "is, accept this finding",
                evidence={
                    "column": culprit,
                    "drop": [culprit],
                    "round": number,
                    metric: reached,
                    f"{metric}_without": without,
                    "partners": partners,
                    "block_at": block,
                },
            )
        )
        set_aside.add(culprit)
    result.figures["leakage_rounds"] = rounds
    result.figures[f"quick_model_{metric}"] = rounds[0][metric] if rounds else None


def _names(columns: list[str]) -> str:
    quoted = [repr(c) for c in columns]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
