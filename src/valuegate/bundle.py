"""The model bundle: one directory that scores raw rows and makes the business decision.

Layout (every file's sha256 is in the manifest; the manifest's own hash is beside it):

    manifest.json          input schema, decision threshold, objective and value figures,
                           metrics, config, data fingerprint, library versions, git revision,
                           the numpy encoder (below) and the sha256 of every other file
    manifest.json.sha256
    pipeline.skops         the fitted sklearn pipeline (preprocessing + estimator), skops
                           with valuegate's trusted-type list (artifacts.py), never pickle
    pipeline.skops.sha256
    booster.ubj            xgboost models only: the booster in xgboost's own UBJSON format

Why skops + UBJSON: the pipeline holds sklearn preprocessing that xgboost's format cannot
hold, and skops refuses any type outside an explicit list, so an altered file cannot run
code. ONNX would need a converter per estimator and float32 re-validation. For xgboost the
hot path does not need the pipeline at all: the fitted preprocessing (median imputation and
one-hot encoding) is compiled into a small numpy encoder stored in the manifest, and the
booster (UBJSON, a data format) scores its output. At package time the encoder + booster
must give scores identical to the sklearn pipeline, else the bundle falls back to the
pipeline (`scoring.hot_path = "sklearn_pipeline"`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuegate.artifacts import load_pipeline, save_pipeline
from valuegate.calibration import apply_calibration
from valuegate.errors import ArtifactError, ConfigError, DataError
from valuegate.io import atomic_dir, atomic_write_text, to_json

FORMAT = "valuegate-bundle/1"
MANIFEST = "manifest.json"
PIPELINE = "pipeline.skops"
BOOSTER = "booster.ubj"
HOT_XGB = "xgboost_numpy"
HOT_PIPELINE = "sklearn_pipeline"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("valuegate", "scikit-learn", "xgboost-cpu", "xgboost", "numpy", "pandas",
                 "skops", "pyarrow"):  # fmt: skip
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def created_time() -> str:
    """A bundle's creation time, UTC, ISO 8601. SOURCE_DATE_EPOCH (seconds; the
    reproducible-builds convention) fixes it, so a rebuild can give the same bytes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        moment = time.gmtime(int(epoch)) if epoch else time.gmtime()
    except (ValueError, OverflowError, OSError):
        raise ConfigError(
            f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds since 1970-01-01; "
            "unset it or give e.g. SOURCE_DATE_EPOCH=1700000000."
        ) from None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def git_revision(cwd: str | Path = ".") -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


# --------------------------------------------------------------------------- input schema

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

_CHUNKS = re.compile(r"(\d+)")


def natural_key(value: Any) -> tuple:
    """Sort key: numbers by value first (2 < 10, "-1" < "2"), then text with its digit
    runs compared as numbers ("level 2" < "level 10")."""
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        return (0, number, text)
    parts = _CHUNKS.split(text.lower())
    return (1, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), text)


def natural_sorted(values: Any) -> list[str]:
    return sorted((str(v) for v in values), key=natural_key)


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


def category_lookup(categories: list[str]) -> dict[Any, str]:
    """value -> the training category it is: each category by its text, and categories
    that are numbers also by their value (33, 33.0 and "33.0" all find "33": a column of
    integer codes arrives as text from a CSV, as numbers from JSON or Parquet, and as
    "33.0" when pandas read the training file's codes as floats because of gaps)."""
    lookup: dict[Any, str] = {}
    for category in categories:
        try:
            number = float(category)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            lookup.setdefault(number, category)
    lookup.update({c: c for c in categories})  # text matches first
    return lookup


def resolve_category(value: Any, lookup: dict[Any, str]) -> str | None:
    """The training category `value` stands for, or None (unseen). Bools never match a
    number (True is not the code 1); text that reads as a number matches by value."""
    if isinstance(value, bool | np.bool_):
        return lookup.get(str(value))
    found = lookup.get(value)
    if found is not None or not isinstance(value, str):
        return found
    try:
        number = float(value)
    except ValueError:
        return None
    return lookup.get(number) if math.isfinite(number) else None


def unseen_label(value: Any) -> str:
    """What an unseen value is passed to the pipeline as: its text (integral numbers
    without '.0'), which the fitted encoders map to "unknown" as they were fitted to."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- the encoder


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


def pa_values(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def category_codes(values: pd.Series, categories: Any) -> np.ndarray:
    """Index of each value in `categories` (a pyarrow string array), -1 when unknown or
    missing. pyarrow's hash lookup, without turning Arrow strings into Python objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values, from_pandas=True)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string()) if len(array) else pa.array([], pa.string())
    return pc.index_in(array, value_set=categories).fill_null(-1).to_numpy(zero_copy_only=False)


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


# --------------------------------------------------------------------------- the bundle


@dataclass
class Bundle:
    """A loaded, verified bundle."""

    path: Path
    manifest: dict[str, Any]
    pipeline: Any
    booster: Any | None
    encoder: Encoder | None

    @property
    def version(self) -> str:
        return str(self.manifest.get("version") or self.path.name)

    @property
    def task(self) -> str:
        return self.manifest["model"]["task"]

    @property
    def fields(self) -> list[dict[str, Any]]:
        return self.manifest["input"]["fields"]

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.fields if f.get("role") != "amount"]

    @property
    def amount_column(self) -> str | None:
        return self.manifest["input"].get("amount_column")

    @property
    def operating_point(self) -> tuple[str, float]:
        point = self.manifest["decision"]
        return point["kind"], float(point["value"])

    @property
    def hot_path(self) -> str:
        return self.manifest["scoring"]["hot_path"]

    def _raw_scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x), dtype=float).reshape(-1)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Raw model scores (n,) -> the calibrated scores (n,) the threshold applies to: the
        manifest's `calibration`, fitted on out-of-fold training scores (contract C);
        bundles without one score unchanged."""
        return apply_calibration(self.manifest.get("calibration"), scores)

    def score_record(self, record: dict[str, Any]) -> float:
        """One validated record -> calibrated score (numpy hot path for xgboost)."""
        if self.encoder is not None:
            return float(self.calibrate(self._raw_scores(self.encoder.encode_record(record)))[0])
        return float(self.score_frame(pd.DataFrame([record]))[0])

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Validated rows (a DataFrame holding the feature columns) -> calibrated scores,
        shape (n,)."""
        return self.calibrate(self._uncalibrated_frame(frame))

    def _uncalibrated_frame(self, frame: pd.DataFrame) -> np.ndarray:
        if self.encoder is not None:
            return self._raw_scores(self.encoder.encode_frame(frame))
        from valuegate.models import predict_scores

        features = frame[self.features].copy()
        for field in self.fields:
            if field["dtype"] == "category" and field["name"] in features:
                features[field["name"]] = features[field["name"]].astype(object)
        with warnings.catch_warnings():
            # unseen levels are expected (counted by check_chunk), not a warning per chunk
            warnings.filterwarnings("ignore", message="Found unknown categories")
            return predict_scores(self.pipeline, features, self.task)


def _value_model(manifest: dict[str, Any]) -> Any:
    from valuegate.business import BinaryValueModel, RegressionValueModel

    objective = manifest["objective"]
    if manifest["model"]["task"] == "binary":
        values = {
            o: (
                float(objective["outcomes"][o]["value"]),
                float(objective["outcomes"][o]["per_amount"]),
            )
            for o in ("tp", "fp", "fn", "tn")
        }
        return BinaryValueModel(values=values, volume=float(objective["volume"]))
    cost = objective["cost"]
    return RegressionValueModel(
        float(cost["under"]),
        float(cost["over"]),
        float(cost["tolerance"]),
        float(objective["volume"]),
    )


def decide(
    bundle: Bundle, scores: np.ndarray, amount: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Decision and expected value per row, from the value model in business.py.

    Binary: decision = score >= threshold (True = take the objective's action); expected
    value = p * value(if positive) + (1 - p) * value(if negative) of that decision, with the
    score read as the probability of the positive class. Regression: decision = prediction +
    offset; the expected value needs the outcome and is not given (NaN).
    """
    from valuegate.business import BinaryValueModel

    _kind, point = bundle.operating_point
    model = _value_model(bundle.manifest)
    scores = np.asarray(scores, dtype=float)
    if isinstance(model, BinaryValueModel):
        flagged = scores >= point
        return {
            "decision": flagged,
            "expected_value": model.expected_case_values(scores, flagged, amount),
        }
    return {"decision": scores + point, "expected_value": np.full(len(scores), np.nan)}


# --------------------------------------------------------------------------- validation


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


def _probe_pipeline(
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


# --------------------------------------------------------------------------- save / load


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    text = to_json(manifest, digits=17)
    atomic_write_text(directory / MANIFEST, text)
    atomic_write_text(directory / (MANIFEST + ".sha256"), sha256_file(directory / MANIFEST) + "\n")


def save_bundle(
    target: str | Path,
    pipeline: Any,
    manifest: dict[str, Any],
    check_frame: pd.DataFrame,
    extra_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write a bundle directory atomically (temp dir + rename). `extra_files` (name ->
    bytes, e.g. the row lineage) are written and hashed like every file. `manifest` holds the
    descriptive fields; this adds scoring, files and hashes. `check_frame` (validated rows)
    proves the numpy encoder scores exactly as the pipeline; else the pipeline is the path."""
    from valuegate.models import predict_scores

    target = Path(target)
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest.setdefault("created", created_time())
    manifest["libraries"] = library_versions()
    # What the fitted pipeline itself accepts (missing values, unseen levels) is what
    # batch scoring and the service accept: ask it, on the check rows.
    manifest["input"] = {
        **manifest["input"],
        "fields": _probe_pipeline(
            pipeline, manifest["input"]["fields"], check_frame, manifest["model"]["task"]
        ),
    }
    encoder_spec = compile_encoder(pipeline)
    scoring: dict[str, Any] = {"hot_path": HOT_PIPELINE, "encoder": None}
    with atomic_dir(target) as tmp:
        save_pipeline(pipeline, tmp / PIPELINE)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)  # inside the temporary dir: atomic with it
        if encoder_spec is not None:
            booster = final_xgboost(pipeline).get_booster()
            booster.save_model(str(tmp / BOOSTER))
            features = [f["name"] for f in manifest["input"]["fields"] if f.get("role") != "amount"]
            probe = Bundle(tmp, manifest, pipeline, booster, Encoder(encoder_spec))
            # the same calibration on both sides: the hot path must match the pipeline
            expected = probe.calibrate(
                predict_scores(pipeline, check_frame[features], manifest["model"]["task"])
            )
            got = probe.score_frame(check_frame)
            single = np.array(
                [probe.score_record(r) for r in check_frame[features].head(50).to_dict("records")]
            )
            diff = float(np.max(np.abs(got - expected), initial=0.0))
            diff = max(diff, float(np.max(np.abs(single - expected[:50]), initial=0.0)))
            if diff == 0.0:
                scoring = {
                    "hot_path": HOT_XGB,
                    "encoder": encoder_spec,
                    "verified_rows": len(check_frame),
                }
            else:
                (tmp / BOOSTER).unlink()
                scoring["fallback_reason"] = f"numpy encoder differs by {diff:g} from the pipeline"
        else:
            scoring["fallback_reason"] = (
                "the final model is not impute + one-hot -> xgboost; rows are scored by the "
                "sklearn pipeline (a DataFrame per request)"
            )
        manifest["scoring"] = scoring
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        _write_manifest(tmp, manifest)
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest, after checking its own hash (no other file is read)."""
    directory = Path(directory)
    path = directory / MANIFEST
    sidecar = directory / (MANIFEST + ".sha256")
    if not path.is_file() or not sidecar.is_file():
        raise ArtifactError(f"{directory} is not a complete bundle (no {MANIFEST} + its hash).")
    if sha256_file(path) != sidecar.read_text().strip():
        raise ArtifactError(f"{path} was altered after the bundle was written; refusing it.")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: unknown bundle format {manifest.get('format')!r}.")
    return manifest


def verify_bundle(directory: str | Path) -> dict[str, Any]:
    """Check every file's sha256 against the manifest; refuse missing, altered or extra files."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed = manifest["files"]
    present = {
        p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(MANIFEST)
    }
    extra = present - set(listed)
    if extra:
        raise ArtifactError(f"{directory} holds files its manifest does not list: {sorted(extra)}.")
    for name, expected in listed.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is missing; the bundle is incomplete.")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{path} was altered after the bundle was written (sha256 {actual[:12]}..., "
                f"manifest says {expected[:12]}...); refusing to load it."
            )
    return manifest


def load_bundle(directory: str | Path) -> Bundle:
    """Load a bundle, verifying every hash and refusing untrusted types (skops)."""
    directory = Path(directory)
    manifest = verify_bundle(directory)
    pipeline = load_pipeline(directory / PIPELINE)
    booster = encoder = None
    if manifest["scoring"]["hot_path"] == HOT_XGB:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(directory / BOOSTER))
        encoder = Encoder(manifest["scoring"]["encoder"])
    return Bundle(directory, manifest, pipeline, booster, encoder)
