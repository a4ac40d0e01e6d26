"""Column quality: missing values (per column and per row), constant and near-constant
columns, ID-like columns and high-cardinality categoricals. Counts use every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData, plural
from valuegate.config.schema import AssessConfig


def check_quality(data: AssessData, config: AssessConfig) -> CheckResult:
    result = CheckResult()
    features = [c for c in data.features if all(c in f for f in data.splits.values())]
    _missing(data, features, config, result)
    _infinite(data, [c for c in features if c in data.numeric], result)
    train = data.splits["train"]
    for column in features:
        _constant_id_cardinality(data, train[column], config, result)
    return result


def _missing(data: AssessData, features: list[str], config: AssessConfig, result) -> None:
    rows = sum(len(f) for f in data.splits.values())
    counts = pd.Series(0, index=features, dtype=np.int64)
    half_empty_rows: dict[str, np.ndarray] = {}
    for split, frame in data.splits.items():
        isna = frame[features].isna()
        counts += isna.sum()
        per_row = isna.sum(axis=1).to_numpy()
        half_empty_rows[split] = np.flatnonzero(per_row >= max(1, len(features) / 2))
    shares = counts / rows
    result.figures["missing_cells_share"] = float(counts.sum() / (rows * max(1, len(features))))
    result.charts["missing_share"] = {
        c: float(s) for c, s in shares.sort_values(ascending=False).items() if s > 0
    }
    for column, share in shares.items():
        if share <= 0:
            continue
        warn = share >= config.missing.column_warn
        result.findings.append(
            Finding(
                id=f"missing_values:{column}",
                severity="warn" if warn else "info",
                title=f"{column!r} is empty in {share:.1%} of rows ({int(counts[column]):,}).",
                action=(
                    f"find out why {column!r} is missing; models impute it, which hides a "
                    "missing-not-at-random pattern; drop it (data.features.drop) if it carries "
                    "little"
                    if warn
                    else "nothing: models impute it"
                ),
                evidence={"column": column, "missing": int(counts[column]), "share": share},
            )
        )
    n_half = sum(len(v) for v in half_empty_rows.values())
    if n_half:
        share = n_half / rows
        result.findings.append(
            Finding(
                id="missing_values:rows",
                severity="warn" if share >= config.missing.row_warn else "info",
                title=f"{plural(n_half, 'row', 'rows')} ({share:.1%}) "
                f"{'is' if n_half == 1 else 'are'} empty in at least half "
                f"{'its' if n_half == 1 else 'their'} features.",
                action="check how these rows were collected; drop them at the source if they "
                "are broken records",
                evidence={"rows": n_half, "share": share},
                example_rows={
                    s: data.row_ids(s, idx[:10]) for s, idx in half_empty_rows.items() if len(idx)
                },
            )
        )


def _infinite(data: AssessData, numeric: list[str], result: CheckResult) -> None:
    """Infinite numbers (e.g. a ratio divided by zero): no model can fit or score them,
    and they are not missing values either; the other checks treat them as missing."""
    for column in numeric:
        rows = {}
        for split, frame in data.splits.items():
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
            rows[split] = np.flatnonzero(np.isinf(values))
        n = sum(len(r) for r in rows.values())
        if not n:
            continue
        result.findings.append(
            Finding(
                id=f"infinite_values:{column}",
                severity="block",
                title=f"{column!r} holds {plural(n, 'infinite value', 'infinite values')} "
                f"({', '.join(f'{s} {len(r):,}' for s, r in rows.items() if len(r))}): the "
                "models cannot be trained or scored on them.",
                action=f"fix {column!r} at the source (e.g. a division by zero), or make "
                "those cells empty so that the models impute them",
                evidence={"column": column, "rows": {s: len(r) for s, r in rows.items()}},
                example_rows={s: data.row_ids(s, r[:10]) for s, r in rows.items() if len(r)},
            )
        )


def _constant_id_cardinality(data: AssessData, column: pd.Series, config, result) -> None:
    name = str(column.name)
    n = len(column)
    counts = column.value_counts(dropna=False)
    top_share = float(counts.iloc[0] / n) if n else 1.0
    distinct = int(counts.size)
    if distinct <= 1:
        empty = n == 0 or column.isna().all()
        result.findings.append(
            Finding(
                id=f"constant:{name}",
                severity="warn",
                title=f"{name!r} "
                + (
                    "is empty in every training row"
                    if empty
                    else "has one value in every training row"
                )
                + ": it cannot help any model.",
                action=f"drop it: add {name!r} to data.features.drop",
                evidence={"column": name, "value": str(counts.index[0]) if distinct else None},
            )
        )
        return
    if top_share >= config.quality.near_constant:
        result.findings.append(
            Finding(
                id=f"near_constant:{name}",
                severity="info",
                title=f"{name!r} holds {str(counts.index[0])!r} in {top_share:.1%} of training "
                "rows: little to learn from.",
                action="nothing, unless the rare values are errors",
                evidence={"column": name, "top_value": str(counts.index[0]), "share": top_share},
            )
        )
    unique_share = distinct / n
    categorical = name in data.categorical
    # Numbers are continuous, so distinct per row is normal for amounts; an integer column
    # is a row id only when every value is distinct and they are dense (a counter).
    if categorical:
        id_like = unique_share >= config.quality.id_like
    elif ptypes.is_integer_dtype(column) and distinct == n and n > 1:
        span = float(column.max()) - float(column.min()) + 1
        id_like = span <= 2 * n
    else:
        id_like = False
    if id_like:
        result.findings.append(
            Finding(
                id=f"id_like:{name}",
                severity="warn",
                title=f"{name!r} is (nearly) unique per row ({unique_share:.0%} distinct in "
                "train): an identifier, which models memorise instead of learning.",
                action="declare it as data.id_column, or drop it (data.features.drop, or "
                "assess.remedies.drop_id_like_columns: true)",
                evidence={"column": name, "distinct": distinct, "rows": n},
            )
        )
    elif categorical and distinct > config.quality.max_categories:
        result.findings.append(
            Finding(
                id=f"high_cardinality:{name}",
                severity="warn",
                title=f"Categorical {name!r} has {distinct:,} levels in train: one-hot models "
                "grow wide and rare levels are unseen in test.",
                action="group rare levels at the source, or drop the column",
                evidence={
                    "column": name,
                    "levels": distinct,
                    "limit": config.quality.max_categories,
                },
            )
        )
