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

from valuegate.assess.combined import (
    MIN_FALL,
    STAND_IN_FALL,
    QuickModel,
    score,
    time_kind,
    time_pairs,
)
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
    """Rounds of the quick model on the features not set aside. While it reaches the block
    level, drop-column importance names the culprit (`_culprits`): one column, or a group
    of redundant columns removed together when no single removal changes the score; it is
    set aside and the rest checked again. After the last round, the leak's stand-ins
    (`_stand_ins`) are checked. The amount column is never a culprit: the decision is
    valued on it, so it is known when the decision is made."""
    cfg = config.leakage
    metric = "auc" if data.task == "binary" else "r2"
    label = "ROC AUC" if metric == "auc" else "R2"
    block = getattr(cfg, f"{metric}_block")
    rounds: list[dict] = []
    set_aside = set(set_aside)
    features: list[str] = []
    round_pairs: list[tuple[str, str, str]] = []
    reached = None
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
        record["full"] = full
        record["without"] = without
        culprits, left = _culprits(data, cfg, quick, features, round_pairs, full, without)
        if not culprits:
            result.findings.append(
                Finding(
                    id="combined_leakage:quick_model",
                    severity="warn",
                    title=f"A quick model on all {len(features)} features reaches "
                    f"cross-validated {label} {reached:.3f}, at or above the {block:g} that "
                    "would block, yet removing its most important features, one at a time "
                    f"or together, changes it by less than {MIN_FALL}: either "
                    f"{data.target!r} is this predictable, or a leak is spread over many "
                    "columns.",
                    action="look at the most important features (evidence); if none is "
                    "recorded after the outcome, accept this finding",
                    evidence={"drop": [], metric: reached, "without": without, "block_at": block},
                )
            )
            break
        record["culprit"] = "+".join(culprits)
        if len(culprits) > 1:
            record[f"without_{record['culprit']}"] = left
        result.findings.append(
            _culprit_finding(data, cfg, culprits, left, number, reached, without, scores, features)
        )
        set_aside.update(culprits)
    if any(r.get("culprit") for r in rounds) and reached is not None and reached < block:
        # The leak's weaker copies, round after round (each set aside before the next).
        for _ in range(cfg.max_rounds):
            found = _stand_ins(
                data, cfg, quick, pairs, rounds, features, round_pairs, set_aside, block, scores
            )
            if not found:
                break
            result.findings.append(_stand_in_finding(data, found, block))
            rounds.append(
                {
                    "round": len(rounds) + 1,
                    "features": len(features),
                    "set_aside_before": sorted(set_aside),
                    metric: found[metric],
                    "without": found["without"],
                    "culprit": "+".join(found["columns"]),
                    "stand_ins": True,
                    "restores": found["restores"],
                }
            )
            set_aside.update(found["columns"])
            features = [f for f in data.features if f not in set_aside]
            round_pairs = [p for p in pairs if p[0] not in set_aside and p[1] not in set_aside]
    twins = _missing_twins(data, quick, set_aside)
    for column, leak in twins.items():
        result.findings.append(_missing_twin_finding(data, column, leak))
    for column, (leak, fit) in _linear_twins(data, quick, set_aside | set(twins)).items():
        result.findings.append(_linear_twin_finding(data, column, leak, fit))
    result.figures["leakage_rounds"] = rounds
    result.figures[f"quick_model_{metric}"] = rounds[0][metric] if rounds else None


MIN_TWIN_GAPS = 20  # a missing pattern shared by fewer rows says nothing
TWIN_JACCARD = 0.95  # missing on (almost) exactly the same rows as a blocked column
TWIN_SHIFT = 0.5  # the shared gaps move the positive rate by this much (binary), or the
#                   target's mean by this many standard deviations (regression)


def _missing_twins(data: AssessData, quick: QuickModel, blocked: set[str]) -> dict[str, str]:
    """{column: blocked column} for the features still in use that are missing on the same
    rows as a blocked leak (Jaccard >= TWIN_JACCARD of the two sets of gaps), where those
    gaps themselves tell the outcome (they move the target by TWIN_SHIFT or more).

    A column recorded by the same event as a leak shares its gaps: the air time of a
    flight is missing exactly where the arrival delay is (cancelled or diverted), and a
    missing air time says "late" as surely as the delay did. No model sees that when the
    column is otherwise weak (it restores little to a model that has the departure
    delay). A legitimate column missing on a different set (the departure time, missing
    only for cancellations: Jaccard 0.88 on the flights sample) is left alone."""
    frame = data.splits["train"].iloc[quick.positions]
    y = quick.y
    twins: dict[str, str] = {}
    leaks = [c for c in blocked if c in frame and c != data.amount_column]
    for leak in leaks:
        gaps = frame[leak].isna().to_numpy()
        if gaps.sum() < MIN_TWIN_GAPS or gaps.all():
            continue
        if data.task == "binary":
            shift = abs(y[gaps].mean() - y[~gaps].mean())
        else:
            spread = float(np.nanstd(y)) or 1.0
            shift = abs(np.nanmean(y[gaps]) - np.nanmean(y[~gaps])) / spread
        if shift < TWIN_SHIFT:
            continue
        for column in data.features:
            if column in blocked or column == data.amount_column or column in twins:
                continue
            other = frame[column].isna().to_numpy()
            union = (gaps | other).sum()
            if union and (gaps & other).sum() / union >= TWIN_JACCARD:
                twins[column] = leak
    return twins


DROP_OR_ACCEPT = (
    "if it is not known when the decision is made, drop it (data.features.drop, or "
    "assess.remedies.drop_leaky_columns: true); if it is, accept this finding"
)
LINEAR_TWIN_R2 = 0.95  # the column (with the amount) gives the leak's values back this well
LINEAR_TWIN_PARTIAL = 0.9  # ... and explains this share of what the amount alone leaves
MIN_TWIN_ROWS = 50


def _r2(target: np.ndarray, columns: list[np.ndarray]) -> float:
    """In-sample R2 of a least-squares fit of `target` on `columns` plus an intercept."""
    design = np.column_stack([np.ones(len(target)), *columns])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    spread = float(np.var(target))
    return 1.0 - float(np.var(target - design @ coef)) / spread if spread > 0 else 0.0


def _linear_twins(
    data: AssessData, quick: QuickModel, blocked: set[str]
) -> dict[str, tuple[str, dict]]:
    """{column: (blocked column, fit)} for numeric features still in use from which,
    with the amount column when there is one, a least-squares line gives a blocked numeric
    leak back (R2 >= LINEAR_TWIN_R2), the column explaining most of what the amount alone
    leaves unexplained (partial R2 >= LINEAR_TWIN_PARTIAL).

    The same quantity recorded twice after the outcome: on a loan, the balance left is the
    amount minus the principal paid, so once the principal paid blocks, the balance and the
    amount (known at application) give it back exactly, while the balance alone is a weak
    predictor that no drop-column test singles out. The amount is known when the decision
    is made (it is what the decision is valued on), so a column that needs only it to
    re-express a leak is that leak."""
    frame = data.splits["train"].iloc[quick.positions]
    numeric = set(data.numeric)
    amount = data.amount_column if data.amount_column in numeric else None
    base_columns = [frame[amount].to_numpy(float)] if amount else []
    found: dict[str, tuple[str, dict]] = {}
    for leak in sorted(c for c in blocked if c in numeric and c in frame):
        if time_kind(frame[leak]) is not None:
            # times leak through differences (the pair check), and a pair's scheduled half
            # is set aside with its actual half: a line to it says nothing
            continue
        target = frame[leak].to_numpy(float)
        for column in data.features:
            if column in blocked or column in found or column == amount or column not in numeric:
                continue
            values = frame[column].to_numpy(float)
            rows = np.isfinite(target) & np.isfinite(values)
            for base in base_columns:
                rows &= np.isfinite(base)
            if rows.sum() < MIN_TWIN_ROWS:
                continue
            base = [b[rows] for b in base_columns]
            with_column = _r2(target[rows], [values[rows], *base])
            without = _r2(target[rows], base) if base else 0.0
            partial = (with_column - without) / (1.0 - without) if without < 1.0 else 0.0
            if with_column >= LINEAR_TWIN_R2 and partial >= LINEAR_TWIN_PARTIAL:
                found[column] = (leak, {"r2": with_column, "r2_without": without})
    return found


def _linear_twin_finding(data: AssessData, column: str, leak: str, fit: dict) -> Finding:
    partner = f" with {data.amount_column!r}" if data.amount_column in data.numeric else ""
    return Finding(
        id=f"combined_leakage:{column}",
        severity="block",
        title=f"{column!r}{partner} gives back {leak!r}, which leaks: a straight line fits "
        f"it with R2 {fit['r2']:.3f} ({fit['r2_without']:.3f} without {column!r}), so "
        f"{column!r} is the same quantity recorded after the outcome, and the leak stays "
        "in the features while it does.",
        action=DROP_OR_ACCEPT,
        evidence={
            "columns": [column],
            "drop": [column],
            "gives_back": leak,
            "r2": fit["r2"],
            "r2_without": fit["r2_without"],
            "r2_at": LINEAR_TWIN_R2,
        },
    )


def _missing_twin_finding(data: AssessData, column: str, leak: str) -> Finding:
    return Finding(
        id=f"combined_leakage:{column}",
        severity="block",
        title=f"{column!r} is missing on the same rows as {leak!r}, which leaks, and those "
        f"rows tell {data.target!r}: it is probably recorded by the same event, after the "
        "outcome, and its gaps give the outcome away as the leak's did.",
        action=DROP_OR_ACCEPT,
        evidence={
            "columns": [column],
            "drop": [column],
            "missing_like": leak,
            "jaccard_at": TWIN_JACCARD,
            "shift_at": TWIN_SHIFT,
        },
    )


def _culprits(
    data: AssessData,
    cfg,
    quick: QuickModel,
    features: list[str],
    pairs: list[tuple[str, str, str]],
    full: float | None,
    without: dict[str, float | None],
) -> tuple[list[str], float | None]:
    """(culprit columns, score without them) for one round, from the score `without` each
    top candidate:
    1. among removals that bring the score under the block level and lower it by at least
       a third of the largest fall: the one that keeps the highest score (a leak is usually
       the "last mile" on top of legitimate signal; this keeps most of that);
    2. else, when the most important candidate (by permutation) costs less than MIN_FALL
       to remove, others stand in for it: a group grows from it, adding the candidate (or
       close numeric relative) whose removal with it lowers the score most, until the
       score falls by MIN_FALL; members whose return alone restores less than a third of
       that fall are not part of it. The group is the culprit when its removal lowers the
       score more than any single removal;
    3. else the removal that lowers it most (several leaks: one per round).
    The third in 1: on a lending table, removing the loan amount (which the installment
    needs to give the rate away, but balance + principal paid stand in for it) left 0.947,
    just under 0.95 with the leak in place (a fall of 0.016), while removing the
    installment left 0.833 (a fall of 0.13): a removal that only shaves the score under
    the line is not the culprit."""
    metric = "auc" if data.task == "binary" else "r2"
    block = getattr(cfg, f"{metric}_block")
    eligible = {f: v for f, v in without.items() if v is not None and f != data.amount_column}
    if full is None or not eligible:
        return [], None
    falls = {f: full - v for f, v in eligible.items()}
    largest = max(falls.values())
    under = {f: v for f, v in eligible.items() if v < block and falls[f] >= largest / 3}
    if under:
        culprit = max(under, key=under.__getitem__)
        return [culprit], under[culprit]
    culprit = max(falls, key=falls.__getitem__)
    top = next(iter(eligible))  # the most important by permutation
    if falls[top] < MIN_FALL:
        # The model leans on it most, yet its removal costs nothing: something stands in
        # for it. The redundant group is the culprit when it falls more than any single.
        group, left = _redundant_group(data, quick, features, pairs, full, eligible)
        if group and full - left >= max(MIN_FALL, falls[culprit]):
            return group, left
    if falls[culprit] >= MIN_FALL:
        return [culprit], eligible[culprit]
    return [], None


def _redundant_group(
    data: AssessData,
    quick: QuickModel,
    features: list[str],
    pairs: list[tuple[str, str, str]],
    full: float,
    eligible: dict[str, float],
) -> tuple[list[str], float | None]:
    """(members, score without them), or ([], None). A group grows from the most
    important candidate (`eligible` keeps the permutation-importance order), adding each
    time the candidate whose removal with the group lowers the score most, until it falls
    by MIN_FALL."""
    group = [next(iter(eligible))]
    # A redundant copy of the top candidate often is not a candidate itself (permuting one
    # copy costs little while the other is there): its closest numeric relatives join.
    pool = [*eligible, *_relatives(data, quick, group[0], features, exclude=set(eligible))]
    left = None
    while len(group) < len(pool):
        trials = {
            c: quick.score_without(features, pairs, [*group, c]) for c in pool if c not in group
        }
        trials = {c: v for c, v in trials.items() if v is not None}
        if not trials:
            return [], None
        best = min(trials, key=trials.__getitem__)
        group.append(best)
        left = trials[best]
        if full - left >= MIN_FALL:
            break
    else:
        return [], None
    # Members carry the leak: each one's return alone restores a third of the fall.
    members = [
        m
        for m in group
        if (quick.score_without(features, pairs, [g for g in group if g != m]) or 0.0) - left
        >= max(MIN_FALL, (full - left) / 3)
    ]
    if len(members) >= 2 and members != group:
        left = quick.score_without(features, pairs, members)
    return (members, left) if len(members) >= 2 else (group, left)


RELATIVES = 3  # numeric columns most rank-correlated with a top candidate, tried with it
RELATIVE_MIN_CORRELATION = 0.5
CLOSE_RELATIVE = 0.8  # |Spearman| at which a stand-in suspect is a relative of a culprit


def _related(
    data: AssessData, quick: QuickModel, column: str, others: list[str], level: float
) -> bool:
    """Whether numeric `column` has |Spearman correlation| >= `level` with any numeric
    column of `others` on the quick model's sample."""
    if column not in data.numeric:
        return False
    frame = data.splits["train"].iloc[quick.positions]
    base = frame[column].astype(float)
    for other in others:
        if other in data.numeric and other != column:
            rho = base.corr(frame[other].astype(float), method="spearman")
            if rho == rho and abs(rho) >= level:
                return True
    return False


def _relatives(
    data: AssessData, quick: QuickModel, column: str, features: list[str], exclude: set[str]
) -> list[str]:
    """Up to RELATIVES numeric features whose |Spearman correlation| with `column` (on the
    quick model's sample) is at least RELATIVE_MIN_CORRELATION, closest first; never the
    amount column."""
    if column not in data.numeric:
        return []
    frame = data.splits["train"].iloc[quick.positions]
    base = frame[column].astype(float)
    found = {}
    for other in features:
        if (
            other in data.numeric
            and other not in (column, data.amount_column)
            and other not in exclude
        ):
            rho = base.corr(frame[other].astype(float), method="spearman")
            if rho == rho and abs(rho) >= RELATIVE_MIN_CORRELATION:  # NaN: a constant
                found[other] = abs(rho)
    return sorted(found, key=lambda c: -found[c])[:RELATIVES]


def _culprit_finding(data, cfg, culprits, left, number, reached, without, scores, features):
    metric = "auc" if data.task == "binary" else "r2"
    label = "ROC AUC" if metric == "auc" else "R2"
    block = getattr(cfg, f"{metric}_block")
    subject = "+".join(culprits)
    if len(culprits) > 1:
        title = (
            f"{_names(culprits, 'and')} give {data.target!r} away together and stand in for "
            f"each other: a quick model on {len(features)} features reaches cross-validated "
            f"{label} {reached:.3f}; without any one of them it hardly changes, without all "
            f"{len(culprits)} {fmt(left, '.3f')}. Redundant columns are checked as one, like "
            "one column measured twice."
        )
        action = (
            "if they are not known when the decision is made, drop them all "
            "(data.features.drop, or assess.remedies.drop_leaky_columns: true); if they are, "
            "accept this finding"
        )
        return Finding(
            id=f"combined_leakage:{subject}",
            severity="block",
            title=title,
            action=action,
            evidence={
                "columns": list(culprits),
                "drop": list(culprits),
                "round": number,
                metric: reached,
                f"{metric}_without": without,
                f"{metric}_without_all": left,
                "block_at": block,
            },
        )
    culprit = culprits[0]
    partners = [f for f, v in without.items() if f != culprit and v is not None and v < block]
    return Finding(
        id=f"combined_leakage:{culprit}",
        severity="block",
        title=f"{culprit!r} gives {data.target!r} away in combination: a quick model "
        f"on {len(features)} features reaches cross-validated {label} {reached:.3f}, "
        f"without {culprit!r} {fmt(left, '.3f')}; {culprit!r} alone "
        f"{fmt(scores.get(culprit, float('nan')), '.3f')}"
        + (
            f". Removing {_names(partners)} also brings it below {block:g}: "
            f"{culprit!r} leaks together with {'it' if len(partners) == 1 else 'them'}, "
            f"and is the one whose removal takes the leak away at the least cost."
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


def _stand_ins(
    data: AssessData,
    cfg,
    quick: QuickModel,
    pairs: list[tuple[str, str, str]],
    rounds: list[dict],
    features: list[str],
    round_pairs: list[tuple[str, str, str]],
    set_aside: set[str],
    block: float,
    scores: dict[str, float],
) -> dict | None:
    """The leak's stand-ins: columns that were among the most important while the leak was
    there (candidates of a blocking round) but that the leak made redundant, and that carry
    a weaker copy of it once its culprits are gone (on a lending table the balance and the
    principal paid, which give the interest rate away less exactly than the interest paid).

    Suspects: candidates of the blocking rounds, not set aside, not the amount column, and
    not needed by the leak (a column whose removal alone brought a blocking round below
    the block level is the leak's culprit or a legitimate column it decodes with). They are
    stand-ins when, together,
    - removing them from the leak-free model (the last round's features) lowers it by at
      least STAND_IN_FALL, and
    - removing them from the first round's model (every leak present) cost at most half
      that: the leak carried what they carry;
    members are those whose return alone restores a third of the fall, and more than they
    predict alone (score alone minus chance). None when not."""
    metric = "auc" if data.task == "binary" else "r2"
    blocking = [r for r in rounds if r.get("culprit") and not r.get("stand_ins")]
    needed = set()
    for r in blocking:
        floor = min(v for v in r["without"].values() if v is not None) if r["without"] else None
        for f, v in r["without"].items():
            # under the block level, or as low as the culprit's removal brought it
            if v is not None and (v < block or v == floor):
                needed.add(f)
    # The leak-free model's own most important features too: a stand-in the leak masked
    # may not have been among the candidates while the leak was there. (Their drop-column
    # scores are for the report: computed only when stand-ins are found, as the last
    # search, which finds none, would spend most of its fits on them.)
    free_top = quick.important(features, round_pairs, cfg.culprit_candidates)
    suspects: list[str] = []
    for candidates in [*(r["without"] for r in blocking), free_top]:
        for f in candidates:
            if (
                f in features
                and f not in set_aside
                and f not in needed
                and f != data.amount_column
                and f not in suspects
            ):
                suspects.append(f)
    if not suspects:
        return None
    kept = quick.score_without(features, round_pairs, [])
    without_all = quick.score_without(features, round_pairs, suspects)
    if kept is None or without_all is None:
        return None
    fall_free = kept - without_all
    if fall_free < STAND_IN_FALL:
        return None
    first = rounds[0]
    leak_features = [f for f in data.features if f not in first["set_aside_before"]]
    leak_pairs = [
        p
        for p in pairs
        if p[0] not in first["set_aside_before"] and p[1] not in first["set_aside_before"]
    ]
    with_leak = first.get("full")
    with_leak_without = quick.score_without(leak_features, leak_pairs, suspects)
    if with_leak is None or with_leak_without is None:
        return None
    fall_with_leak = with_leak - with_leak_without
    if fall_with_leak > fall_free / 2:
        return None
    restores = {}
    for m in suspects:
        back = quick.score_without(features, round_pairs, [s for s in suspects if s != m])
        restores[m] = None if back is None else back - without_all
    # A stand-in's value is in combination (it decodes the leak with other columns): its
    # return restores more than it predicts alone. A legitimate strong feature the leak
    # masked restores less than its own signal alone (it overlaps the other honest ones).
    # ... unless it is a close relative of a column already blocked (|Spearman| >= 0.8 with
    # a culprit: the principal paid next to the total paid), which says where its
    # signal comes from.
    chance = 0.5 if metric == "auc" else 0.0
    culprit_columns = [c for r in blocking for c in r["culprit"].split("+")]
    members = [
        m
        for m, r in restores.items()
        if r is not None
        and r >= max(MIN_FALL, fall_free / 3)
        and (
            r > scores.get(m, chance) - chance
            or _related(data, quick, m, culprit_columns, CLOSE_RELATIVE)
        )
    ]
    if not members:
        return None
    culprits = [r["culprit"] for r in blocking]
    without_members = quick.score_without(features, round_pairs, members)
    if without_members is None:
        without_members = without_all
    return {
        "columns": members,
        "suspects": suspects,
        "stand_in_for": culprits,
        "features": len(features),
        metric: kept,
        f"{metric}_without": without_members,
        f"{metric}_without_suspects": without_all,
        "fall": kept - without_members,
        "fall_suspects": fall_free,
        "fall_with_leak": fall_with_leak,
        "without": {f: quick.score_without(features, round_pairs, [f]) for f in free_top},
        "restores": restores,
    }


def _stand_in_finding(data: AssessData, found: dict, block: float) -> Finding:
    metric = "auc" if data.task == "binary" else "r2"
    label = "ROC AUC" if metric == "auc" else "R2"
    columns = found["columns"]
    culprits = [c for joined in found["stand_in_for"] for c in joined.split("+")]
    one = len(columns) == 1
    return Finding(
        id="combined_leakage:" + "+".join(columns),
        severity="block",
        title=f"{_names(columns, 'and')} {'stands' if one else 'stand'} in for the leak of "
        f"{_names(culprits, 'and')}: with the leak set aside, a quick model on the "
        f"{found['features']} remaining features reaches cross-validated {label} "
        f"{found[metric]:.3f}, without {'it' if one else 'them'} "
        f"{found[f'{metric}_without']:.3f} (a fall of {found['fall']:.3f}, at least "
        f"{STAND_IN_FALL:g}), while with the leak present removing "
        f"{'it' if one else 'them'} cost {fmt(found['fall_with_leak'], '.3f')}: "
        f"{'it carries' if one else 'they carry'} a weaker copy of what the leak carried.",
        action="if "
        + ("it is" if one else "they are")
        + " not known when the decision is made, drop "
        + ("it" if one else "them")
        + " (data.features.drop, or assess.remedies.drop_leaky_columns: true); if "
        + ("it is" if one else "they are")
        + ", accept this finding",
        evidence={
            "columns": columns,
            "drop": columns,
            "stand_in_for": culprits,
            metric: found[metric],
            f"{metric}_without": found[f"{metric}_without"],
            "fall_with_leak": found["fall_with_leak"],
            "suspects": found["suspects"],
            "fall_at": STAND_IN_FALL,
            "block_at": block,
        },
    )


def _names(columns: list[str], word: str = "or") -> str:
    quoted = [repr(c) for c in columns]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" {word} " + quoted[-1]
