"""Load raw data, validate it against the data config, infer features, split.

Pure functions except `load_raw` (reads a file). Errors name the column, the bad value
and what is allowed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from valuegate.config.messages import nearest
from valuegate.config.schema import DataConfig
from valuegate.errors import DataError

SPLITS = ("train", "valid", "test")
MIN_ROWS_PER_CLASS = 5


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_raw(cfg: DataConfig, root: str | Path = ".") -> pd.DataFrame:
    """Read `data.path` (CSV or Parquet) relative to `root`."""
    path = Path(root) / cfg.path
    if not path.is_file():
        raise DataError(f"data.path: file {cfg.path!r} not found (looked in {path.resolve()}).")
    fmt = cfg.format
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv"
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"data.path: cannot read {cfg.path!r} as {fmt}: {exc}") from None


def _missing_column(key: str, column: str, df: pd.DataFrame) -> DataError:
    hint = nearest(column, df.columns)
    shown = ", ".join(map(str, df.columns[:30])) + (" ..." if df.shape[1] > 30 else "")
    return DataError(
        f"{key}: column {column!r} is not in the data"
        + (f" (did you mean {hint!r}?)" if hint else "")
        + f". Columns present: {shown}."
    )


@dataclass(frozen=True)
class Schema:
    """What the prepared data holds; stored beside the splits as JSON."""

    task: str
    target: str
    positive_label: Any
    numeric: list[str]
    categorical: list[str]
    amount_column: str | None
    id_column: str | None
    categories: dict[str, list[str]]
    rows: dict[str, int]
    positives: dict[str, int] | None
    source_sha256: str

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Schema:
        return cls(**raw)


def target_vector(df: pd.DataFrame, cfg: DataConfig) -> np.ndarray:
    """0/1 for binary (1 = positive label), float for regression; shape (n,)."""
    target = df[cfg.target]
    if cfg.task == "binary":
        return (target.astype(str) == str(cfg.positive_label)).to_numpy(dtype=np.int8)
    return target.to_numpy(dtype=float)


def validate_frame(df: pd.DataFrame, cfg: DataConfig) -> None:
    """Stop on data the config cannot be applied to; every message names the column."""
    if df.shape[0] == 0:
        raise DataError(f"data.path: {cfg.path!r} holds no rows.")
    named = {
        "data.target": cfg.target,
        "data.id_column": cfg.id_column,
        "data.time_column": cfg.time_column,
        "data.amount_column": cfg.amount_column,
    }
    for key, column in named.items():
        if column is not None and column not in df.columns:
            raise _missing_column(key, column, df)
    for key in ("numeric", "categorical", "drop"):
        for column in getattr(cfg.features, key) or []:
            if column not in df.columns:
                raise _missing_column(f"data.features.{key}", column, df)

    target = df[cfg.target]
    missing_target = np.flatnonzero(target.isna().to_numpy())
    if len(missing_target):
        raise DataError(
            f"data.target: column {cfg.target!r} is empty in {len(missing_target)} rows "
            f"(first rows: {missing_target[:5].tolist()}); drop or fill them first."
        )
    if cfg.task == "binary":
        labels = sorted(map(str, target.unique()))
        if str(cfg.positive_label) not in labels:
            hint = nearest(str(cfg.positive_label), labels)
            raise DataError(
                f"data.positive_label: {cfg.positive_label!r} does not occur in column "
                f"{cfg.target!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f". Values present: {', '.join(labels[:20])}."
            )
        if len(labels) != 2:
            raise DataError(
                f"data.target: a binary task needs exactly 2 values in column {cfg.target!r}, "
                f"found {len(labels)}: {', '.join(labels[:20])}."
            )
        counts = target.astype(str).value_counts()
        if counts.min() < MIN_ROWS_PER_CLASS * len(SPLITS):
            raise DataError(
                f"data.target: column {cfg.target!r} has only {int(counts.min())} rows of "
                f"{counts.idxmin()!r}; each split needs at least {MIN_ROWS_PER_CLASS} of each "
                "class."
            )
    else:
        if not ptypes.is_numeric_dtype(target):
            raise DataError(
                f"data.target: a regression target must be numeric; column {cfg.target!r} "
                f"has dtype {target.dtype}."
            )
        if target.nunique() < 2:
            raise DataError(f"data.target: column {cfg.target!r} is constant.")
    if cfg.amount_column is not None:
        amount = df[cfg.amount_column]
        if not ptypes.is_numeric_dtype(amount):
            raise DataError(
                f"data.amount_column: column {cfg.amount_column!r} must be numeric, "
                f"has dtype {amount.dtype}."
            )
        bad = np.flatnonzero(amount.isna().to_numpy())
        if len(bad):
            raise DataError(
                f"data.amount_column: column {cfg.amount_column!r} is empty in {len(bad)} "
                f"rows (first rows: {bad[:5].tolist()}); every case needs an amount to be "
                "valued."
            )
    for key in ("numeric",):
        for column in getattr(cfg.features, key) or []:
            if not ptypes.is_numeric_dtype(df[column]):
                raise DataError(
                    f"data.features.numeric: column {column!r} has dtype {df[column].dtype}, "
                    "not a number; list it under data.features.categorical instead."
                )


def infer_features(df: pd.DataFrame, cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names: declared lists, or inferred from dtypes."""
    reserved = {cfg.target, cfg.id_column, cfg.time_column, *cfg.features.drop} - {None}
    declared = set(cfg.features.numeric or []) | set(cfg.features.categorical or [])
    clash = sorted(declared & reserved)
    if clash:
        raise DataError(
            f"data.features: {clash} cannot be features: they are the target, the id or "
            "time column, or listed under data.features.drop."
        )
    rest = [c for c in df.columns if c not in reserved]
    numeric = cfg.features.numeric
    categorical = cfg.features.categorical
    if numeric is None:
        numeric = [
            c
            for c in rest
            if c not in (categorical or [])
            and ptypes.is_numeric_dtype(df[c])
            and not ptypes.is_bool_dtype(df[c])
        ]
    if categorical is None:
        categorical = [c for c in rest if c not in numeric]
    if not numeric and not categorical:
        raise DataError("data.features: no feature columns are left to learn from.")
    return list(numeric), list(categorical)


def clean_categoricals(df: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categoricals as strings, missing as NaN (one dtype however the file was read)."""
    out = df.copy()
    for column in categorical:
        out[column] = out[column].map(str, na_action="ignore").astype(object)
    return out


def split_frame(df: pd.DataFrame, cfg: DataConfig, seed: int) -> dict[str, pd.DataFrame]:
    """Split rows into train/valid/test by `cfg.split` (deterministic for a seed)."""
    n = len(df)
    split = cfg.split
    if split.method == "time":
        order = np.argsort(df[cfg.time_column].to_numpy(), kind="mergesort")
    elif split.method == "stratified":
        rng = np.random.default_rng(seed)
        y = target_vector(df, cfg)
        order_parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        for label in (0, 1):
            idx = np.flatnonzero(y == label)
            idx = idx[rng.permutation(len(idx))]
            a = round(split.train * len(idx))
            b = a + round(split.valid * len(idx))
            order_parts["train"].append(idx[:a])
            order_parts["valid"].append(idx[a:b])
            order_parts["test"].append(idx[b:])
        return {
            s: df.iloc[np.sort(np.concatenate(order_parts[s]))].reset_index(drop=True)
            for s in SPLITS
        }
    else:
        order = np.random.default_rng(seed).permutation(n)
    a = round(split.train * n)
    b = a + round(split.valid * n)
    parts = {"train": order[:a], "valid": order[a:b], "test": order[b:]}
    out = {}
    for name, idx in parts.items():
        idx = idx if split.method == "time" else np.sort(idx)
        out[name] = df.iloc[idx].reset_index(drop=True)
    return out


def prepare(df: pd.DataFrame, cfg: DataConfig, seed: int, source_sha256: str):
    """Validate, select columns, split. Returns (splits, schema)."""
    validate_frame(df, cfg)
    numeric, categorical = infer_features(df, cfg)
    keep = [c for c in (cfg.id_column, cfg.time_column, cfg.amount_column) if c]
    columns = list(dict.fromkeys([*keep, *numeric, *categorical, cfg.target]))
    frame = clean_categoricals(df[columns], categorical)
    splits = split_frame(frame, cfg, seed)
    for name, part in splits.items():
        if len(part) == 0:
            raise DataError(
                f"data.split: the {name} split is empty ({len(df)} rows in all); use more "
                "data or a larger data.split." + name + " fraction."
            )
    if cfg.task == "binary":
        positives = {s: int(target_vector(p, cfg).sum()) for s, p in splits.items()}
        for name, part in splits.items():
            if positives[name] in (0, len(part)):
                raise DataError(
                    f"data.split: the {name} split holds only one class of {cfg.target!r}; "
                    "a time split over a period where one class is absent does this."
                )
    else:
        positives = None
    categories = {c: sorted(splits["train"][c].dropna().unique().tolist()) for c in categorical}
    schema = Schema(
        task=cfg.task,
        target=cfg.target,
        positive_label=cfg.positive_label,
        numeric=numeric,
        categorical=categorical,
        amount_column=cfg.amount_column,
        id_column=cfg.id_column,
        categories=categories,
        rows={s: len(p) for s, p in splits.items()},
        positives=positives,
        source_sha256=source_sha256,
    )
    return splits, schema
