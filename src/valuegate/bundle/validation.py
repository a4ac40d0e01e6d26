"""What scoring accepts: the bundle's input schema and the checks of columns, batch
chunks and single records against it (one definition for batch files and the service)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from valuegate.bundle.categories import (
    category_codes,
    category_lookup,
    natural_sorted,
    pa_values,
    resolve_category,
    unseen_label,
)
from valuegate.errors import DataError

# The largest magnitude a feature value may have: the booster (and scikit-learn's trees)
# compute in float32, where anything beyond this becomes infinity. One rule for batch
# scoring and the service: a value is accepted when it is finite *as float32*.
FLOAT32_MAX = float(np.finfo(np.float32).max)

# The strings pandas' read_csv reads as missing by default (its documented `na_values`):
# the training file was read with them, so scoring reads a CSV with the same list.
CSV_NULL_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def input_schema(schema: Any, train: pd.DataFrame) -> list[dict[str, Any]]:
    """Field list for the bundle: name, dtype, seen_missing (gaps in training), nullable
    (a missing value is accepted: refined by `save_bundle`, which asks the fitted
    pipeline), and the known categories, sorted naturally; the amount column is added when
    it is not a feature (the expected value of a decision needs it, so it is never
    nullable)."""
    fields = []
    for name in schema.numeric:
        seen = bool(train[name].isna().any())
        fields.append({"name": name, "dtype": "float64", "nullable": seen, "seen_missing": seen})
    for name in schema.categorical:
        seen = bool(train[name].isna().any())
        fields.append(
            {
                "name": name,
                "dtype": "category",
                "nullable": seen,
                "seen_missing": seen,
                "categories": natural_sorted(schema.categories[name]),
            }
        )
    amount = schema.amount_column
    if amount and amount not in schema.features:
        fields.append({"name": amount, "dtype": "float64", "nullable": False, "role": "amount"})
    return fields


@dataclass
class ChunkCheck:
    """What `check_chunk` found in n rows.

    clean: the schema's columns, numbers as float64 and categories as the training text
        the fitted pipeline knows (unseen values as their own text, missing as NaN);
    bad: bool (n,), rows refused; errors: (row number, reason) of the refused rows, row
        numbers counting data rows from 1;
    unseen: per categorical column, values that are not a training category (accepted and
        scored as the pipeline scores unknown levels);
    new_missing: per column, missing values where training had none (accepted because the
        pipeline imputes them, or, for a category, scores them as an unknown level)."""

    clean: pd.DataFrame
    bad: np.ndarray
    errors: list[tuple[int, str]]
    unseen: dict[str, int]
    new_missing: dict[str, int]


def check_columns(columns: Any, fields: list[dict[str, Any]], where: str = "the input") -> None:
    """Refuse an input that lacks a field's column or holds one twice (which of the two
    would be scored is a guess)."""
    names = [str(c) for c in columns]
    needed = {f["name"] for f in fields}
    twice = sorted({c for c in names if c in needed and names.count(c) > 1})
    if twice:
        raise DataError(
            f"{where} holds column(s) {twice} more than once; the model reads each column "
            "once: remove or rename the copies."
        )
    missing = [f["name"] for f in fields if f["name"] not in names]
    if missing:
        raise DataError(
            f"{where} lacks column(s) {missing} that the model needs; it has {names[:30]}."
        )


def _resolve_column(column: pd.Series, categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values the pipeline receives, bool mask of unseen values) for one categorical column:
    exact text matches by pyarrow's hash lookup; only the rest go through
    `resolve_category` (numbers by value), once per distinct value."""
    isna = column.isna().to_numpy()
    text = column
    if not pd.api.types.is_string_dtype(column):
        text = column.map(str, na_action="ignore").astype(object)
    codes = category_codes(text, pa_values(categories)) if categories else np.full(len(text), -1)
    known = np.array([*categories, np.nan], dtype=object)
    values = known[codes]  # code -1 -> the trailing NaN
    unmatched = np.flatnonzero((codes < 0) & ~isna)
    unseen = np.zeros(len(column), dtype=bool)
    if len(unmatched):
        lookup = category_lookup(categories)
        raw = column.to_numpy(dtype=object)[unmatched]
        resolved = {}
        for value in raw:
            if value not in resolved:
                resolved[value] = resolve_category(value, lookup)
        for i, value in zip(unmatched, raw, strict=True):
            found = resolved[value]
            if found is None:
                unseen[i] = True
                values[i] = unseen_label(value)
            else:
                values[i] = found
    return values, unseen


def check_chunk(
    frame: pd.DataFrame, fields: list[dict[str, Any]], first_row: int = 0
) -> ChunkCheck:
    """Check rows against the bundle schema: the one definition of what scoring accepts,
    for batch files and (per record, `serving.app`) the service. A row is refused for a
    numeric value that is not a number or not finite as float32 (|x| > 3.4e38), for a
    missing value the pipeline cannot take (field `nullable`), and for an unseen category
    only when the bundle says the pipeline refuses them (`unseen: refused`). A missing or
    duplicated column is a DataError for the whole input."""
    check_columns(frame.columns, fields)
    n = len(frame)
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    clean = {}
    unseen_counts: dict[str, int] = {}
    new_missing: dict[str, int] = {}
    for field in fields:
        name = field["name"]
        column = frame[name]
        isna = column.isna().to_numpy()
        if field["dtype"] == "category":
            values, unseen = _resolve_column(column, field["categories"])
            clean[name] = pd.Series(values, index=frame.index, dtype=object)
            if field.get("unseen", "accepted") == "accepted":
                problem = np.zeros(n, dtype=bool)
                if unseen.any():
                    unseen_counts[name] = int(unseen.sum())
            else:
                problem = unseen
            shown = ", ".join(field["categories"][:10]) + (
                ", ..." if len(field["categories"]) > 10 else ""
            )
            why = f"{name}: value not among the known categories [{shown}]"
        else:
            numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            text = np.isnan(numbers) & ~isna
            problem = text | (np.abs(np.nan_to_num(numbers, nan=0.0)) > FLOAT32_MAX)
            why = f"{name}: not a number, or not finite as float32 (|x| > {FLOAT32_MAX:.4g})"
            clean[name] = pd.Series(numbers, index=frame.index)
        for i in np.flatnonzero(problem & ~bad):
            reasons[int(i)] = f"{why} (got {column.iloc[i]!r})"
        bad |= problem
        if isna.any():
            if field.get("nullable", False):
                if not field.get("seen_missing", True):
                    new_missing[name] = int(isna.sum())
            else:
                for i in np.flatnonzero(isna & ~bad):
                    reasons[int(i)] = (
                        f"{name}: missing, and the model cannot take a missing {name}"
                        if field.get("role") != "amount"
                        else f"{name}: missing amount (the expected value needs it)"
                    )
                bad |= isna
    out = pd.DataFrame(clean, index=frame.index)
    errors = sorted((first_row + i + 1, reason) for i, reason in reasons.items())
    return ChunkCheck(out, bad, errors, unseen_counts, new_missing)


def validate_chunk(frame: pd.DataFrame, fields: list[dict[str, Any]], first_row: int = 0):
    """`check_chunk` as (clean frame, bad rows mask, [(row number, reason)])."""
    result = check_chunk(frame, fields, first_row)
    return result.clean, result.bad, result.errors


class RecordChecker:
    """`check_chunk` for one record (the service's per-request path, O(fields), no
    DataFrame): values already typed (numbers finite as float32, categories text or
    integers: the service's request model checks that) -> the record the encoder and the
    pipeline take, with categories resolved to their training text exactly as
    `check_chunk` resolves them (`category_lookup` / `resolve_category`)."""

    def __init__(self, fields: list[dict[str, Any]]):
        self.categorical = [
            (
                f["name"],
                category_lookup(f["categories"]),
                f.get("unseen", "accepted") == "accepted",
                f.get("seen_missing", True),
            )
            for f in fields
            if f["dtype"] == "category"
        ]
        self.numeric_gaps = [
            f["name"]
            for f in fields
            if f["dtype"] != "category" and f.get("nullable") and not f.get("seen_missing", True)
        ]

    def __call__(self, record: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
        """(record, columns holding an unseen category, columns missing where training had
        no gaps). ValueError naming the column for an unseen category the bundle refuses."""
        unseen: list[str] = []
        new_missing: list[str] = []
        for name, lookup, accepts_unseen, seen_missing in self.categorical:
            value = record.get(name)
            if value is None:
                if not seen_missing:
                    new_missing.append(name)
                continue
            found = lookup.get(value) if value.__class__ is str else None
            if found is None:
                found = resolve_category(value, lookup)
            if found is None:
                if not accepts_unseen:
                    raise ValueError(f"{name}: {value!r} is not among the known categories")
                unseen.append(name)
                found = unseen_label(value)
            record[name] = found
        for name in self.numeric_gaps:
            if record.get(name) is None:
                new_missing.append(name)
        return record, unseen, new_missing


def probe_pipeline(
    pipeline: Any, fields: list[dict[str, Any]], frame: pd.DataFrame, task: str
) -> list[dict[str, Any]]:
    """The fields, with `nullable` (and, for categories, `unseen`) set to what the fitted
    pipeline accepts: a copy of one valid row with that one value missing (or an unseen
    level) must score to a finite number. All probes go in one call; only when that
    call fails is each probe tried alone, to find which."""
    from valuegate.models import predict_scores

    features = [f["name"] for f in fields if f.get("role") != "amount"]
    if not len(frame) or not features:
        return fields
    complete = frame[features].dropna()  # a row without gaps: each probe adds exactly one
    base = (complete if len(complete) else frame[features]).iloc[:1]
    probes: list[tuple[int, str, pd.DataFrame]] = []
    for i, field in enumerate(fields):
        if field.get("role") == "amount":
            continue
        row = base.copy()
        row[field["name"]] = np.nan
        probes.append((i, "nullable", row))
        if field["dtype"] == "category":
            row = base.copy()
            row[field["name"]] = "\x00valuegate-probe: a level never seen in training"
            probes.append((i, "unseen", row))

    def accepts(rows: pd.DataFrame) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "unknown categories ... encoded as zeros"
                scores = predict_scores(pipeline, rows, task)
        except (ValueError, TypeError, KeyError):
            return False
        return bool(np.all(np.isfinite(scores)))

    together = accepts(pd.concat([p[2] for p in probes], ignore_index=True))
    out = [dict(f) for f in fields]
    for i, what, row in probes:
        ok = together or accepts(row)
        if what == "nullable":
            out[i]["nullable"] = bool(ok or out[i].get("seen_missing", False))
        else:
            out[i]["unseen"] = "accepted" if ok else "refused"
    return out
