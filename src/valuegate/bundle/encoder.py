"""The numpy encoder: the fitted preprocessing of an xgboost pipeline compiled into plain
data (stored in the manifest) and applied without scikit-learn on the scoring hot path."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from valuegate.bundle.categories import category_codes, pa_values


def final_xgboost(pipeline: Any) -> Any | None:
    """The fitted XGBClassifier / XGBRegressor at the end of `pipeline` (inside a wrapper
    that keeps it as `estimator_`, e.g. early stopping), or None."""
    from xgboost import XGBClassifier, XGBRegressor

    final = pipeline.steps[-1][1]
    final = getattr(final, "estimator_", final)
    return final if isinstance(final, XGBClassifier | XGBRegressor) else None


def _probe_frame(encoder: Any, columns: list[str], varied: int, values: list[Any]) -> pd.DataFrame:
    """Rows for `encoder` where column `varied` takes each of `values` and every other
    column holds its first training category (so only that column's output changes)."""
    data = {}
    for i, column in enumerate(columns):
        if i == varied:
            data[column] = pd.Series(values, dtype=object)
        else:
            first = encoder.categories_[i][0]
            data[column] = pd.Series([first] * len(values), dtype=object)
    return pd.DataFrame(data)


UNSEEN_PROBE = "\x00valuegate-probe: a level never seen in training"


def _compile_onehot(encoder: Any, columns: list[str], offset: int) -> list[dict] | None:
    """Each column's output block of a fitted OneHotEncoder, found by transforming probe
    rows (public API only, so infrequent-level buckets and unknown levels come out exactly
    as the encoder maps them): per column its training categories, the position each one
    sets in the block, and where missing and unseen values go (None: nowhere)."""
    blocks: list[dict] = []
    start = 0
    total = None
    for i, column in enumerate(columns):
        cats = encoder.categories_[i].tolist()
        values = [c for c in cats if not (isinstance(c, float) and math.isnan(c))]
        probe = _probe_frame(encoder, columns, i, [*values, np.nan, UNSEEN_PROBE])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown categories ... encoded as zeros"
            out = encoder.transform(probe)
        out = np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=float)
        total = out.shape[1]
        varying = np.flatnonzero(out.max(axis=0) != out.min(axis=0))
        if len(varying) == 0:  # one column that every value sets
            width = 1
        elif varying[0] != start or len(varying) != varying[-1] - start + 1:
            return None
        else:
            width = len(varying)
        block = out[:, start : start + width]
        if not np.all((block == 0) | (block == 1)) or np.any(block.sum(axis=1) > 1):
            return None
        where = [int(np.argmax(row)) if row.any() else None for row in block]
        positions = where[: len(values)]
        if any(p is None for p in positions):
            return None
        blocks.append(
            {
                "name": column,
                "offset": offset + start,
                "categories": [str(c) for c in values],
                "columns": positions,
                "width": width,
                "missing": where[len(values)],
                "unknown": where[len(values) + 1],
            }
        )
        start += width
    if total is not None and start != total:
        return None
    return blocks


def _compile_ordinal(encoder: Any, columns: list[str], offset: int) -> list[dict] | None:
    """Each column's codes from a fitted OrdinalEncoder (xgboost's native categories), by
    transforming probe rows: per training category its code, and the code of missing and
    unseen values (None: NaN, which the booster reads as missing)."""
    out: list[dict] = []
    for i, column in enumerate(columns):
        cats = encoder.categories_[i].tolist()
        values = [c for c in cats if not (isinstance(c, float) and math.isnan(c))]
        probe = _probe_frame(encoder, columns, i, [*values, np.nan, UNSEEN_PROBE])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codes = np.asarray(encoder.transform(probe), dtype=float)[:, i]
        listed = [None if math.isnan(c) else float(c) for c in codes]
        out.append(
            {
                "name": column,
                "index": offset + i,
                "categories": [str(c) for c in values],
                "codes": listed[: len(values)],
                "missing": listed[len(values)],
                "unknown": listed[len(values) + 1],
            }
        )
    return out


def compile_encoder(pipeline: Any) -> dict[str, Any] | None:
    """The fitted preprocessing as plain data, or None when it is not a shape the numpy
    hot path reproduces: median/mean imputation of numbers and one-hot (with infrequent
    buckets) or ordinal (native) categories, into xgboost. The spec is read off the fitted
    transformers themselves, and `save_bundle` checks it scores exactly as the pipeline."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    steps = dict(pipeline.steps)
    estimator = final_xgboost(pipeline)
    if estimator is None:
        return None
    pre = steps.get("preprocess")
    if not isinstance(pre, ColumnTransformer):
        return None
    numeric: list[dict[str, Any]] = []
    categorical: list[dict[str, Any]] = []
    ordinal: list[dict[str, Any]] = []
    offset = 0
    for name, transformer, columns in pre.transformers_:
        if name == "remainder":
            if transformer != "drop":
                return None
            continue
        if isinstance(transformer, SimpleImputer) and transformer.strategy in ("median", "mean"):
            if transformer.add_indicator:
                return None
            for column, fill in zip(columns, transformer.statistics_, strict=True):
                numeric.append({"name": column, "index": offset, "fill": float(fill)})
                offset += 1
        elif (
            isinstance(transformer, OneHotEncoder)
            and transformer.drop is None
            and transformer.handle_unknown in ("ignore", "infrequent_if_exist")
        ):
            blocks = _compile_onehot(transformer, list(columns), offset)
            if blocks is None:
                return None
            categorical += blocks
            offset += sum(b["width"] for b in blocks)
        elif isinstance(transformer, OrdinalEncoder):
            ordinal += _compile_ordinal(transformer, list(columns), offset) or []
            offset += len(columns)
        else:
            return None
    if offset != estimator.n_features_in_:
        return None
    spec: dict[str, Any] = {"n_features": offset, "numeric": numeric, "categorical": categorical}
    if ordinal:
        spec["ordinal"] = ordinal
    return spec


class Encoder:
    """The compiled preprocessing: a record (dict) or a DataFrame -> float32 features.

    One-hot blocks: each training category sets its position in the block (several share
    the "infrequent" one), missing and unseen values theirs (or none); ordinal columns
    (native categories) hold the category's code, NaN when it has none. Specs written
    before infrequent buckets (no "columns") map category i to position i."""

    def __init__(self, spec: dict[str, Any]):
        self.n_features = int(spec["n_features"])
        self.numeric = [(c["name"], int(c["index"]), float(c["fill"])) for c in spec["numeric"]]
        self.categorical = []
        for c in spec["categorical"]:
            positions = c.get("columns") or list(range(len(c["categories"])))
            self.categorical.append(
                (
                    c["name"],
                    int(c["offset"]),
                    {v: int(p) for v, p in zip(c["categories"], positions, strict=True)},
                    np.asarray(positions, dtype=np.int64),
                    c["missing"],
                    c.get("unknown"),
                )
            )
        self.ordinal = []
        for c in spec.get("ordinal", []):
            codes = [np.nan if v is None else float(v) for v in c["codes"]]
            self.ordinal.append(
                (
                    c["name"],
                    int(c["index"]),
                    dict(zip(c["categories"], codes, strict=True)),
                    np.asarray(codes, dtype=np.float32),
                    np.nan if c["missing"] is None else float(c["missing"]),
                    np.nan if c["unknown"] is None else float(c["unknown"]),
                )
            )
        # pyarrow value sets for whole columns (built once)
        self.categorical_frame = [
            (name, offset, positions, pa_values(list(codes)), missing, unknown)
            for name, offset, codes, positions, missing, unknown in self.categorical
        ]
        self.ordinal_frame = [
            (name, index, values, pa_values(list(codes)), missing, unknown)
            for name, index, codes, values, missing, unknown in self.ordinal
        ]

    def encode_record(self, record: dict[str, Any]) -> np.ndarray:
        x = np.zeros((1, self.n_features), dtype=np.float32)
        row = x[0]
        # Missing is None (JSON null) or NaN (a record taken from a DataFrame): both are
        # what the pipeline's imputer / its "missing" category sees as missing.
        for name, index, fill in self.numeric:
            value = record.get(name)
            row[index] = fill if value is None or value != value else value
        for name, offset, codes, _positions, missing, unknown in self.categorical:
            value = record.get(name)
            absent = value is None or value != value
            position = missing if absent else codes.get(value, unknown)
            if position is not None:
                row[offset + position] = 1.0
        for name, index, codes, _values, missing, unknown in self.ordinal:
            value = record.get(name)
            if value is None or value != value:
                row[index] = missing
            else:
                row[index] = codes.get(value, unknown)
        return x

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        x = np.zeros((n, self.n_features), dtype=np.float32)
        for name, index, fill in self.numeric:
            column = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            x[:, index] = np.where(np.isnan(column), fill, column)
        rows = np.arange(n)
        for name, offset, positions, cats, missing, unknown in self.categorical_frame:
            values = frame[name]
            codes = category_codes(values, cats)
            known = codes >= 0
            x[rows[known], offset + positions[codes[known]]] = 1.0
            absent = values.isna().to_numpy()
            if missing is not None:
                x[rows[absent], offset + missing] = 1.0
            if unknown is not None:
                x[rows[~known & ~absent], offset + unknown] = 1.0
        for name, index, values, cats, missing, unknown in self.ordinal_frame:
            column = frame[name]
            codes = category_codes(column, cats)
            known = codes >= 0
            absent = column.isna().to_numpy()
            out = np.full(n, unknown, dtype=np.float32)
            out[absent] = missing
            out[known] = values[codes[known]]
            x[:, index] = out
        return x
