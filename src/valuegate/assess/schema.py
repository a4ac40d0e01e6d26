"""Schema checks: every split holds the declared columns with the declared types, and no
categorical column is really numbers mixed with text."""

from __future__ import annotations

import pandas as pd
from pandas.api import types as ptypes

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData

TEXT_DTYPES = {"object", "str", "string"}
MAX_LEVELS_PARSED = 10_000  # mixed types are judged on the distinct values, at most this many


def check_schema(data: AssessData) -> CheckResult:
    result = CheckResult()
    _listed_twice(data, result)
    expected = data.expected_columns
    missing: dict[str, list[str]] = {}
    unexpected: dict[str, list[str]] = {}
    for split, frame in data.splits.items():
        for column in expected:
            if column not in frame.columns:
                missing.setdefault(column, []).append(split)
        for column in frame.columns:
            if column not in expected:
                unexpected.setdefault(str(column), []).append(split)
    for column, splits in missing.items():
        result.findings.append(
            Finding(
                id=f"missing_column:{column}",
                severity="block",
                title=f"Column {column!r} is declared but missing from the {', '.join(splits)} "
                "split(s).",
                action="rerun `prepare` (the prepared data is stale or was edited by hand)",
                evidence={"column": column, "splits": splits},
            )
        )
    for column, splits in unexpected.items():
        result.findings.append(
            Finding(
                id=f"unexpected_column:{column}",
                severity="info",
                title=f"Column {column!r} is in the data but has no role; models ignore it.",
                action="nothing, or list it under data.features if it should be a feature",
                evidence={"column": column, "splits": splits},
            )
        )
    present = [c for c in dict.fromkeys(data.features) if c not in missing]
    for column in present:
        dtypes = {s: str(f[column].dtype) for s, f in data.splits.items()}
        if column in data.numeric:
            bad = {s: d for s, d in dtypes.items() if not ptypes.is_numeric_dtype(d)}
            if bad:
                result.findings.append(
                    Finding(
                        id=f"dtype:{column}",
                        severity="block",
                        title=f"Numeric feature {column!r} holds non-numbers ({bad}).",
                        action=f"fix the column, or list {column!r} under "
                        "data.features.categorical",
                        evidence={"column": column, "dtypes": dtypes},
                    )
                )
                continue
        # pandas 3 reads an all-empty text column back as object, a filled one as str:
        # the same text column either way.
        if len({"text" if d in TEXT_DTYPES else d for d in dtypes.values()}) > 1:
            result.findings.append(
                Finding(
                    id=f"dtype:{column}",
                    severity="warn",
                    title=f"Column {column!r} has a different type in each split: {dtypes}.",
                    action="rerun `prepare`; if it persists, fix the column's type at the source",
                    evidence={"column": column, "dtypes": dtypes},
                )
            )
    for column in (c for c in dict.fromkeys(data.categorical) if c in present):
        mixed = _mixed_numbers_and_text(data.splits["train"][column])
        if mixed is not None:
            result.findings.append(
                Finding(
                    id=f"mixed_types:{column}",
                    severity="warn",
                    title=f"Categorical {column!r} is {mixed['numeric_share']:.0%} numbers and "
                    f"{1 - mixed['numeric_share']:.0%} text (e.g. {mixed['text_examples']}): "
                    "likely a numeric column with placeholders for missing values.",
                    action=f"turn the placeholders into empty cells and list {column!r} under "
                    "data.features.numeric",
                    evidence={"column": column, **mixed},
                )
            )
    return result


def _listed_twice(data: AssessData, result: CheckResult) -> None:
    """A feature named twice (in one list, or as both numeric and categorical) would be
    read twice by every check and model, with two meanings in the second case."""
    for column in dict.fromkeys(data.features):
        numeric, categorical = data.numeric.count(column), data.categorical.count(column)
        if numeric + categorical < 2:
            continue
        where = (
            "both data.features.numeric and data.features.categorical"
            if numeric and categorical
            else f"data.features.{'numeric' if numeric else 'categorical'} "
            f"{numeric + categorical} times"
        )
        result.findings.append(
            Finding(
                id=f"listed_twice:{column}",
                severity="block",
                title=f"Feature {column!r} is listed in {where}: a feature has one role, once.",
                action=f"list {column!r} once, under data.features.numeric (numbers) or "
                "data.features.categorical (levels)",
                evidence={"column": column, "numeric": numeric, "categorical": categorical},
            )
        )


def _mixed_numbers_and_text(column: pd.Series) -> dict | None:
    """Share of rows (train) holding numbers when most but not all values are numbers."""
    counts = column.value_counts(dropna=True)
    if counts.empty or len(counts) > MAX_LEVELS_PARSED:
        counts = counts.iloc[:MAX_LEVELS_PARSED]
    parsed = pd.to_numeric(pd.Series(counts.index.astype(str)), errors="coerce")
    is_number = parsed.notna().to_numpy()
    numeric_rows = counts.to_numpy()[is_number].sum()
    share = float(numeric_rows / counts.sum()) if counts.sum() else 0.0
    if not 0.5 <= share < 1.0 or is_number.sum() < 3:
        return None
    text = [str(v) for v, n in zip(counts.index, is_number, strict=True) if not n][:5]
    return {"numeric_share": share, "text_examples": text}
